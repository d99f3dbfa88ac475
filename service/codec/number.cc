#include "service/codec/number.h"

#include "absl/strings/str_cat.h"

namespace dynamo_batcher {
namespace codec_internal {

namespace {

inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Exponents beyond this are out of range whatever the mantissa; saturating
// keeps the arithmetic below far from overflow for any input length.
constexpr int64_t kExponentClamp = int64_t{1} << 40;

}  // namespace

NumberError ParseNumber(absl::string_view text, ParsedNumber* out) {
  *out = ParsedNumber();
  const size_t n = text.size();
  size_t i = 0;
  bool negative = false;
  if (i < n && (text[i] == '+' || text[i] == '-')) {
    negative = text[i] == '-';
    ++i;
  }
  // Position of each mantissa digit in the digit sequence (integer part then
  // fraction), and where the significant ones start and end.
  int64_t pos = 0;
  int64_t first_nonzero = -1;
  int64_t last_nonzero = -1;
  int64_t int_len = 0;
  bool too_many = false;
  auto take_digit = [&](char c) {
    if (c != '0') {
      if (first_nonzero < 0) first_nonzero = pos;
      last_nonzero = pos;
    }
    if (first_nonzero >= 0) {
      int64_t k = pos - first_nonzero;
      if (k < kMaxNumberDigits) {
        out->digits[k] = c;
      } else if (c != '0') {
        too_many = true;
      }
    }
    ++pos;
  };
  while (i < n && IsDigit(text[i])) take_digit(text[i++]);
  int_len = pos;
  if (i < n && text[i] == '.') {
    ++i;
    while (i < n && IsDigit(text[i])) take_digit(text[i++]);
  }
  if (pos == 0) return NumberError::kSyntax;  // "", "+", ".", "e5", "-.e1"
  int64_t exp = 0;
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < n && (text[i] == '+' || text[i] == '-')) {
      exp_negative = text[i] == '-';
      ++i;
    }
    if (i >= n || !IsDigit(text[i])) return NumberError::kSyntax;  // "1e"
    while (i < n && IsDigit(text[i])) {
      if (exp < kExponentClamp) exp = exp * 10 + (text[i] - '0');
      ++i;
    }
    if (exp_negative) exp = -exp;
  }
  if (i != n) return NumberError::kSyntax;  // trailing garbage or spaces

  if (first_nonzero < 0) {
    *out = ParsedNumber();  // every zero (-0, 0.0, 0e9) is the one zero
    return NumberError::kOk;
  }
  if (too_many) return NumberError::kTooManyDigits;
  const int64_t sci_exp = (int_len - 1 - first_nonzero) + exp;
  if (sci_exp > kMaxNumberExponent) return NumberError::kOverflow;
  if (sci_exp < kMinNumberExponent) return NumberError::kUnderflow;
  out->negative = negative;
  out->zero = false;
  out->exponent = static_cast<int32_t>(sci_exp);
  out->digit_count = static_cast<uint8_t>(last_nonzero - first_nonzero + 1);
  return NumberError::kOk;
}

const char* NumberErrorText(NumberError e) {
  switch (e) {
    case NumberError::kOk:
      return "valid";
    case NumberError::kSyntax:
      return "is not a number (expected [+-]digits[.digits][e[+-]digits])";
    case NumberError::kTooManyDigits:
      return "has more than 38 significant digits";
    case NumberError::kOverflow:
      return "is larger in magnitude than "
             "9.9999999999999999999999999999999999999E+125";
    case NumberError::kUnderflow:
      return "is smaller in magnitude than 1E-130 (and not zero)";
  }
  return "is invalid";
}

void AppendCanonicalNumber(const ParsedNumber& n, std::string* out) {
  if (n.zero) {
    out->push_back('0');
    return;
  }
  if (n.negative) out->push_back('-');
  out->push_back(n.digits[0]);
  if (n.digit_count > 1) {
    out->push_back('.');
    out->append(n.digits + 1, n.digit_count - 1);
  }
  out->push_back('E');
  absl::StrAppend(out, n.exponent);
}

}  // namespace codec_internal
}  // namespace dynamo_batcher
