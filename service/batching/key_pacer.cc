#include "service/batching/key_pacer.h"

#include <algorithm>
#include <cmath>

namespace dynamo_batcher {
namespace {

// Bucket depth of a paced key: this many seconds of its rate, at least
// kMinDepth items.
constexpr double kDepthSeconds = 0.1;
constexpr double kMinDepth = 2.0;
constexpr double kTokenEpsilon = 1e-9;

double Depth(double rate) { return std::max(kMinDepth, kDepthSeconds * rate); }

}  // namespace

absl::string_view PartitionKeyPart(absl::string_view key) {
  if (key.size() < 5) return key;
  const uint32_t len = (static_cast<uint32_t>(static_cast<unsigned char>(key[1])) << 24) |
                       (static_cast<uint32_t>(static_cast<unsigned char>(key[2])) << 16) |
                       (static_cast<uint32_t>(static_cast<unsigned char>(key[3])) << 8) |
                       static_cast<uint32_t>(static_cast<unsigned char>(key[4]));
  if (len > key.size() - 5) return key;
  return key.substr(0, 5 + static_cast<size_t>(len));
}

KeyPacer::KeyPacer(KeyPacerOptions options) : options_(options) {
  if (!(options_.min_rate > 0)) options_.min_rate = 1.0;
  if (!(options_.decrease_factor > 0 && options_.decrease_factor < 1)) {
    options_.decrease_factor = 0.7;
  }
  if (!(options_.increase_fraction >= 0)) options_.increase_fraction = 0.2;
  if (options_.max_keys == 0) options_.max_keys = 1;
}

void KeyPacer::Refill(Bucket* b, absl::Time now) const {
  if (now > b->last_increase) {
    // Quiet since the last signal: probe upwards, multiplicatively.
    const double dt = absl::ToDoubleSeconds(now - b->last_increase);
    b->rate *= std::pow(1.0 + options_.increase_fraction, dt);
    b->last_increase = now;
  }
  if (now > b->last_refill) {
    const double dt = absl::ToDoubleSeconds(now - b->last_refill);
    b->tokens = std::min(Depth(b->rate), b->tokens + dt * b->rate);
    b->last_refill = now;
  }
}

void KeyPacer::MarkHot(absl::string_view pk, double estimated_rate, absl::Time now) {
  auto it = keys_.find(pk);
  if (it == keys_.end()) {
    if (keys_.size() >= options_.max_keys) {
      Expire(now);
      if (keys_.size() >= options_.max_keys) {
        // Full: drop the key with the oldest signal.
        auto oldest = keys_.begin();
        for (auto k = keys_.begin(); k != keys_.end(); ++k) {
          if (k->second.last_signal < oldest->second.last_signal) oldest = k;
        }
        keys_.erase(oldest);
      }
    }
    Bucket b;
    b.rate = std::max(options_.min_rate, estimated_rate * options_.decrease_factor);
    b.tokens = 0;  // it was just over its limit
    b.last_refill = now;
    b.last_signal = now;
    b.last_increase = now;
    keys_.emplace(std::string(pk), b);
    return;
  }
  Bucket& b = it->second;
  Refill(&b, now);
  if (now - b.last_signal < kDecreaseWindow) return;
  b.rate = std::max(options_.min_rate, b.rate * options_.decrease_factor);
  b.tokens = std::min(b.tokens, Depth(b.rate));
  b.last_signal = now;
  b.last_increase = now;
}

void KeyPacer::OnCall(const std::vector<Item>& items, double table_rate, absl::Time now,
                      size_t* hot_sent, size_t* hot_lost) {
  *hot_sent = 0;
  *hot_lost = 0;
  if (items.empty()) return;
  struct Count {
    size_t sent = 0;
    size_t lost = 0;
  };
  absl::flat_hash_map<absl::string_view, Count> by_key;
  size_t total_lost = 0;
  for (const Item& i : items) {
    Count& c = by_key[i.partition_key];
    ++c.sent;
    if (i.lost) {
      ++c.lost;
      ++total_lost;
    }
  }
  const double n = static_cast<double>(items.size());
  const double measured = table_rate > 0 ? table_rate : n;
  std::vector<absl::string_view> hot;
  for (const auto& [pk, c] : by_key) {
    const bool was_paced = keys_.contains(pk);
    if (total_lost == 0 || c.lost < 2 || 2 * c.lost < c.sent) {
      if (was_paced) {  // a paced key's items belong to it either way
        *hot_sent += c.sent;
        *hot_lost += c.lost;
      }
      continue;
    }
    const double share = static_cast<double>(c.lost) / static_cast<double>(c.sent);
    const size_t rest_sent = items.size() - c.sent;
    const size_t rest_lost = total_lost - c.lost;
    const double rest_share =
        rest_sent > 0 ? static_cast<double>(rest_lost) / static_cast<double>(rest_sent) : 0.0;
    if (rest_share > 0.1 * share) {
      if (was_paced) {
        *hot_sent += c.sent;
        *hot_lost += c.lost;
      }
      continue;
    }
    *hot_sent += c.sent;
    *hot_lost += c.lost;
    // A first concentrated call only makes the key a suspect: random loss
    // can concentrate on one key by chance once, a hot partition does it
    // on call after call.
    if (!was_paced) {
      auto s = suspects_.find(pk);
      if (s == suspects_.end() || now - s->second > kConfirmWindow) {
        if (suspects_.size() >= options_.max_keys) suspects_.clear();
        suspects_[pk] = now;
        continue;
      }
      suspects_.erase(s);
    }
    hot.push_back(pk);
  }
  for (absl::string_view pk : hot) {
    const Count& c = by_key[pk];
    MarkHot(pk, measured * static_cast<double>(c.sent) / n, now);
  }
}

void KeyPacer::OnKeyRangeThrottle(const std::vector<Item>& items, double table_rate,
                                  absl::Time now) {
  if (items.empty()) return;
  absl::flat_hash_map<absl::string_view, size_t> by_key;
  size_t most = 0;
  for (const Item& i : items) most = std::max(most, ++by_key[i.partition_key]);
  const double n = static_cast<double>(items.size());
  const double measured = table_rate > 0 ? table_rate : n;
  for (const auto& [pk, count] : by_key) {
    if (count == most) MarkHot(pk, measured * static_cast<double>(count) / n, now);
  }
}

bool KeyPacer::TryAcquire(absl::string_view pk, absl::Time now, absl::Time* ready_at) {
  auto it = keys_.find(pk);
  if (it == keys_.end()) return true;
  Bucket& b = it->second;
  if (now - b.last_signal >= options_.expiry) {
    keys_.erase(it);
    return true;
  }
  Refill(&b, now);
  if (b.tokens + kTokenEpsilon >= 1.0) {
    b.tokens -= 1.0;
    return true;
  }
  if (ready_at != nullptr) {
    const double seconds = (1.0 - b.tokens) / b.rate;
    *ready_at = now + absl::Ceil(absl::Seconds(seconds), absl::Microseconds(1));
  }
  return false;
}

bool KeyPacer::IsPaced(absl::string_view pk, absl::Time now) const {
  auto it = keys_.find(pk);
  return it != keys_.end() && now - it->second.last_signal < options_.expiry;
}

void KeyPacer::Expire(absl::Time now) {
  for (auto it = keys_.begin(); it != keys_.end();) {
    if (now - it->second.last_signal >= options_.expiry) {
      keys_.erase(it++);
    } else {
      ++it;
    }
  }
}

size_t KeyPacer::paced_keys(absl::Time now) {
  Expire(now);
  return keys_.size();
}

double KeyPacer::RateOf(absl::string_view pk) const {
  auto it = keys_.find(pk);
  return it == keys_.end() ? 0.0 : it->second.rate;
}

}  // namespace dynamo_batcher
