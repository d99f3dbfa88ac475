#pragma once

// DynamoDB number parsing, shared by the codec's validation, canonical keys
// and size accounting. Internal to the codec; use CanonicalNumber() from
// codec.h elsewhere.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace dynamo_batcher {
namespace codec_internal {

inline constexpr int kMaxNumberDigits = 38;
inline constexpr int kMaxNumberExponent = 125;   // 9.99..E+125
inline constexpr int kMinNumberExponent = -130;  // 1E-130

// A validated DynamoDB number, held without allocation: the significant
// digits (no leading or trailing zeros) and the decimal exponent of the first
// of them, so 1500 is {digits "15", exponent 3} and 0.02 is {"2", -2}.
// Numerically equal inputs give equal ParsedNumbers.
struct ParsedNumber {
  bool negative = false;
  bool zero = true;
  int32_t exponent = 0;
  uint8_t digit_count = 0;
  char digits[kMaxNumberDigits] = {};

  absl::string_view Digits() const { return absl::string_view(digits, digit_count); }
  friend bool operator==(const ParsedNumber& a, const ParsedNumber& b) {
    return a.negative == b.negative && a.zero == b.zero && a.exponent == b.exponent &&
           a.Digits() == b.Digits();
  }
  friend bool operator!=(const ParsedNumber& a, const ParsedNumber& b) { return !(a == b); }
  // A total order (not numeric order), for duplicate detection by sorting.
  friend bool operator<(const ParsedNumber& a, const ParsedNumber& b) {
    if (a.zero != b.zero) return a.zero;
    if (a.negative != b.negative) return a.negative;
    if (a.exponent != b.exponent) return a.exponent < b.exponent;
    return a.Digits() < b.Digits();
  }
};

enum class NumberError {
  kOk,
  kSyntax,         // not [+-]digits[.digits][(e|E)[+-]digits]
  kTooManyDigits,  // more than 38 significant digits
  kOverflow,       // magnitude above 9.99..E+125
  kUnderflow,      // non-zero magnitude below 1E-130
};

// Parses DynamoDB's number syntax: optional sign, digits with an optional
// fraction (at least one digit in all; "5." and ".5" are accepted like
// Java's BigDecimal does), optional exponent. No spaces, no hex, no
// NaN/Infinity.
NumberError ParseNumber(absl::string_view text, ParsedNumber* out);

// Human-readable reason for a NumberError, for rejection messages.
const char* NumberErrorText(NumberError e);

// Canonical text: "0" for zero, else scientific notation with no redundant
// zeros, e.g. 1500 -> "1.5E3", -0.02 -> "-2E-2", 7 -> "7E0". It is itself a
// valid DynamoDB number of the same value.
void AppendCanonicalNumber(const ParsedNumber& n, std::string* out);

// DynamoDB's documented size approximation for a number: one byte per two
// significant digits (rounded up) plus one byte. See ItemSize() in codec.h.
inline size_t NumberSize(const ParsedNumber& n) {
  size_t digits = n.zero ? 1 : n.digit_count;
  return (digits + 1) / 2 + 1;
}

}  // namespace codec_internal
}  // namespace dynamo_batcher
