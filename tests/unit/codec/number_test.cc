// DynamoDB number validation and canonical form (CanonicalNumber), and the
// canonical key parts built from numbers.

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "service/codec/codec.h"

namespace dynamo_batcher {
namespace {

std::string Canon(const std::string& text) {
  absl::StatusOr<std::string> c = CanonicalNumber(text);
  EXPECT_TRUE(c.ok()) << text << ": " << c.status();
  return c.ok() ? *c : "<invalid>";
}

TEST(CanonicalNumber, NumericallyEqualInputsAreEqual) {
  const std::string one = Canon("1");
  for (const char* s : {"1.0", "1e0", "10E-1", "0.1e1", "001", "+1", "1.", "1.000000", "100e-2",
                        "0.01E+2", "1E+0"}) {
    EXPECT_EQ(Canon(s), one) << s;
  }
  EXPECT_EQ(Canon("1500"), Canon("1.5e3"));
  EXPECT_EQ(Canon("-0.02"), Canon("-2E-2"));
  EXPECT_EQ(Canon(".5"), Canon("0.5"));
}

TEST(CanonicalNumber, AllZerosAreOneZero) {
  for (const char* s : {"0", "-0", "+0", "0.0", "000", "0e99", "-0.000e-7", ".0", "0."}) {
    EXPECT_EQ(Canon(s), "0") << s;
  }
}

TEST(CanonicalNumber, UsesScientificFormWithoutRedundantZeros) {
  EXPECT_EQ(Canon("1500"), "1.5E3");
  EXPECT_EQ(Canon("-0.02"), "-2E-2");
  EXPECT_EQ(Canon("123.456"), "1.23456E2");
  EXPECT_EQ(Canon("7"), "7E0");
  EXPECT_EQ(Canon("9.9999999999999999999999999999999999999E+125"),
            "9.9999999999999999999999999999999999999E125");
}

TEST(CanonicalNumber, CanonicalFormIsAFixedPoint) {
  for (const char* s : {"1500", "-0.02", "123.456", "7", "0", "1E-130",
                        "-98765432109876543210987654321098765432e-20"}) {
    const std::string once = Canon(s);
    EXPECT_EQ(Canon(once), once) << s;
  }
}

TEST(CanonicalNumber, DifferentValuesDiffer) {
  EXPECT_NE(Canon("1"), Canon("-1"));
  EXPECT_NE(Canon("1"), Canon("10"));
  EXPECT_NE(Canon("12"), Canon("1.2"));
  EXPECT_NE(Canon("0.1"), Canon("0"));
}

TEST(CanonicalNumber, RejectsMalformedSyntax) {
  for (const char* s :
       {"",         "+",         "-",   ".",     "1e", "1e+", "e5",    "NaN", "nan",
        "Infinity", "-Infinity", "inf", " 1",    "1 ", "1\n", "0x10",  "1,5", "1..2",
        "1.2.3",    "--1",       "+-1", "1e1.5", "1f", "١",   "1_000", "\0"}) {
    absl::StatusOr<std::string> c = CanonicalNumber(s);
    EXPECT_FALSE(c.ok()) << '"' << s << '"';
    if (!c.ok()) {
      EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
  EXPECT_FALSE(CanonicalNumber(absl::string_view("1\0", 2)).ok());
}

TEST(CanonicalNumber, AcceptsThirtyEightSignificantDigits) {
  const std::string digits38(38, '7');
  EXPECT_TRUE(CanonicalNumber(digits38).ok());
  EXPECT_FALSE(CanonicalNumber(digits38 + "7").ok());  // 39 digits
  // Leading and trailing zeros are not significant.
  EXPECT_TRUE(CanonicalNumber("000" + digits38 + "000").ok());
  EXPECT_TRUE(CanonicalNumber("0.000" + digits38 + "000").ok());
  EXPECT_TRUE(CanonicalNumber("1" + std::string(100, '0')).ok());
}

TEST(CanonicalNumber, RejectsThirtyNineSignificantDigits) {
  absl::StatusOr<std::string> c = CanonicalNumber("123456789012345678901234567890123456789");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("38 significant digits"), std::string::npos);
  EXPECT_FALSE(CanonicalNumber("1.00000000000000000000000000000000000001").ok());
}

TEST(CanonicalNumber, EnforcesMagnitudeRange) {
  EXPECT_TRUE(CanonicalNumber("9.9999999999999999999999999999999999999E+125").ok());
  EXPECT_TRUE(CanonicalNumber("-9.9999999999999999999999999999999999999E+125").ok());
  EXPECT_TRUE(CanonicalNumber("1E-130").ok());
  EXPECT_TRUE(CanonicalNumber("-1E-130").ok());
  EXPECT_TRUE(CanonicalNumber("0.1E-129").ok());
  EXPECT_FALSE(CanonicalNumber("1E+126").ok());
  EXPECT_FALSE(CanonicalNumber("10E+125").ok());
  EXPECT_FALSE(CanonicalNumber("1E-131").ok());
  EXPECT_FALSE(CanonicalNumber("0.1E-130").ok());
  EXPECT_FALSE(CanonicalNumber("1e99999999999999999999999999").ok());
  EXPECT_FALSE(CanonicalNumber("1e-99999999999999999999999999").ok());
  // Zero is fine with any exponent.
  EXPECT_TRUE(CanonicalNumber("0e-99999999999999999999").ok());
}

TEST(CanonicalNumber, HugeExponentWithManyFractionDigitsIsBalanced) {
  // 1 followed by 200 fraction zeros then a 1 is 2 significant digits...
  // spread over 202 positions: too many digits.
  EXPECT_FALSE(CanonicalNumber("1." + std::string(200, '0') + "1").ok());
  // ...while fraction zeros only shift the exponent.
  EXPECT_EQ(Canon("0." + std::string(100, '0') + "5e100"), Canon("0.5"));
}

TEST(CanonicalKeyPart, NumbersCompareByValue) {
  std::string a, b, c;
  ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kN, "1", &a).ok());
  ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kN, "1.0", &b).ok());
  ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kN, "10E-1", &c).ok());
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  std::string d;
  ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kN, "1.01", &d).ok());
  EXPECT_NE(a, d);
}

TEST(CanonicalKeyPart, RejectsInvalidNumber) {
  std::string key = "prefix";
  absl::Status s = AppendCanonicalKeyPart(KeyType::kN, "1e", &key);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

TEST(CanonicalKeyPart, StringsAndBinariesCompareByBytes) {
  std::string a, b;
  ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kS, "abc", &a).ok());
  ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kS, "abd", &b).ok());
  EXPECT_NE(a, b);
  std::string s1, n1, b1;
  ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kS, "1", &s1).ok());
  ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kN, "1", &n1).ok());
  ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kB, "1", &b1).ok());
  EXPECT_NE(s1, n1);
  EXPECT_NE(s1, b1);
  EXPECT_NE(n1, b1);
}

TEST(CanonicalKeyPart, CompositeKeysNeverCollideAcrossTheBoundary) {
  // Pairs (pk, sk) whose concatenations look alike must stay distinct.
  const std::vector<std::pair<std::string, std::string>> pairs = {{"a|b", "c"},
                                                                  {"a", "b|c"},
                                                                  {"a|", "bc"},
                                                                  {"", "a|bc"},
                                                                  {"a", std::string("\0b", 2)},
                                                                  {std::string("a\0", 2), "b"},
                                                                  {"ab", ""},
                                                                  {"a", "b"},
                                                                  {"abS", ""}};
  std::vector<std::string> keys;
  for (const auto& [pk, sk] : pairs) {
    std::string key;
    ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kS, pk, &key).ok());
    ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kS, sk, &key).ok());
    keys.push_back(key);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    for (size_t j = i + 1; j < keys.size(); ++j) {
      EXPECT_NE(keys[i], keys[j]) << i << " vs " << j;
    }
  }
}

}  // namespace
}  // namespace dynamo_batcher
