// The whole path against a real dynalite on loopback: gRPC streams in,
// BatchWriteItem calls out, table state read back with Scan.

#include <atomic>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/integration/harness.h"

namespace dynamo_batcher::testing {
namespace {

namespace v1 = ::dynamobatcher::v1;
using ::testing::HasSubstr;

// `linger` replaces the default 5ms; `extra` is appended.
std::string Config(const std::string& endpoint, const std::string& extra = "",
                   const std::string& linger = "5ms") {
  return SidecarConfig(endpoint)
      .Table("events", "pk", "S", "sk", "N")
      .Table("users", "id")
      .Linger(linger)
      .Append(extra);
}

v1::AttributeValue S(const std::string& s) {
  v1::AttributeValue v;
  v.set_s(s);
  return v;
}
v1::AttributeValue N(const std::string& n) {
  v1::AttributeValue v;
  v.set_n(n);
  return v;
}

class EndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto d = StartDynalite(dir_);
    ASSERT_TRUE(d.ok()) << d.status();
    dynalite_ = std::move(*d);
  }
  absl::StatusOr<Sidecar> Start(const std::string& extra = "", const std::string& linger = "5ms") {
    return StartSidecar(dir_, Config(dynalite_.endpoint(), extra, linger));
  }
  std::string dir_;
  Dynalite dynalite_;
};

// One op in the generated workload, and what the table must hold after it.
struct GenOp {
  uint64_t id;
  bool users;  // table
  std::string key;
  int sk;
  bool is_delete;
  std::string value;
};

TEST_F(EndToEnd, FourStreamsTwoTablesTableHoldsLastWritePerKey) {
  auto sidecar = Start();
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();

  constexpr int kStreams = 4;
  constexpr int kOpsPerStream = 6000;
  constexpr int kKeysPerStream = 1200;  // per table: many repeats
  constexpr int kOpsPerMessage = 100;
  std::vector<std::vector<GenOp>> work(kStreams);
  uint64_t next_id = 1;
  std::set<std::string> seen;
  int repeated = 0, deletes = 0;
  uint64_t rng = 88172645463325252ull;
  auto rnd = [&] {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  };
  for (int s = 0; s < kStreams; ++s) {
    for (int i = 0; i < kOpsPerStream; ++i) {
      GenOp op;
      op.id = next_id++;
      op.users = rnd() % 2 == 0;
      int k = static_cast<int>(rnd() % kKeysPerStream);
      op.key = absl::StrCat("s", s, "-k", k);
      op.sk = k % 3;
      op.is_delete = rnd() % 100 < 15;
      op.value = absl::StrCat("s", s, "-op", i);
      std::string full = absl::StrCat(op.users, "/", op.key, "/", op.sk);
      if (!seen.insert(full).second) ++repeated;
      deletes += op.is_delete;
      work[s].push_back(op);
    }
  }
  const int total = kStreams * kOpsPerStream;
  ASSERT_GE(repeated, total / 5) << "workload must repeat >= 20% of keys";
  ASSERT_GT(deletes, total / 20);

  std::vector<std::map<uint64_t, int>> result_counts(kStreams);
  std::vector<std::map<uint64_t, v1::WriteResult>> results(kStreams);
  std::vector<grpc::Status> statuses(kStreams);
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int s = 0; s < kStreams; ++s) {
    threads.emplace_back([&, s] {
      auto stub = v1::WriteBatcher::NewStub(sidecar->Channel());
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(240));
      auto stream = stub->Write(&ctx);
      std::thread reader([&] {
        v1::WriteResponse resp;
        while (stream->Read(&resp)) {
          for (const auto& r : resp.results()) {
            ++result_counts[s][r.id()];
            results[s][r.id()] = r;
          }
        }
      });
      for (int i = 0; i < kOpsPerStream; i += kOpsPerMessage) {
        v1::WriteRequest req;
        for (int j = i; j < std::min(i + kOpsPerMessage, kOpsPerStream); ++j) {
          const GenOp& g = work[s][j];
          v1::WriteOp* op = req.add_ops();
          op->set_id(g.id);
          op->set_table(g.users ? "users" : "events");
          auto* attrs = g.is_delete ? op->mutable_delete_key()->mutable_attributes()
                                    : op->mutable_put()->mutable_attributes();
          if (g.users) {
            (*attrs)["id"] = S(g.key);
          } else {
            (*attrs)["pk"] = S(g.key);
            (*attrs)["sk"] = N(absl::StrCat(g.sk));
          }
          if (!g.is_delete) {
            (*attrs)["v"] = S(g.value);
            (*attrs)["n"] = N(absl::StrCat(j));
          }
        }
        if (!stream->Write(req)) break;
      }
      stream->WritesDone();
      reader.join();
      statuses[s] = stream->Finish();
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);

  // Every op exactly one result; only WRITTEN or COALESCED.
  std::map<v1::Outcome, int> outcomes;
  for (int s = 0; s < kStreams; ++s) {
    EXPECT_TRUE(statuses[s].ok()) << statuses[s].error_message();
    ASSERT_EQ(result_counts[s].size(), static_cast<size_t>(kOpsPerStream)) << "stream " << s;
    for (const auto& g : work[s]) {
      ASSERT_EQ(result_counts[s][g.id], 1) << "op " << g.id;
      const auto& r = results[s][g.id];
      ++outcomes[r.outcome()];
      EXPECT_TRUE(r.outcome() == v1::WRITTEN || r.outcome() == v1::COALESCED)
          << "op " << g.id << ": " << v1::Outcome_Name(r.outcome()) << " " << r.error_code() << " "
          << r.message();
    }
  }

  // Expected final state: the last op per key in each stream's order.
  std::map<std::string, std::string> expected;  // "table/key/sk" -> value ("" = deleted)
  for (int s = 0; s < kStreams; ++s) {
    for (const auto& g : work[s]) {
      std::string k =
          g.users ? absl::StrCat("users/", g.key) : absl::StrCat("events/", g.key, "/", g.sk);
      expected[k] = g.is_delete ? "" : g.value;
    }
  }
  std::map<std::string, std::string> actual;
  for (const char* table : {"events", "users"}) {
    auto items = ScanTable(dynalite_.endpoint(), table);
    ASSERT_TRUE(items.ok()) << items.status();
    for (const auto& line : *items) {
      rapidjson::Document d;
      d.Parse(line.c_str());
      ASSERT_FALSE(d.HasParseError()) << line;
      std::string k =
          std::string(table) == "users"
              ? absl::StrCat("users/", d["id"]["S"].GetString())
              : absl::StrCat("events/", d["pk"]["S"].GetString(), "/", d["sk"]["N"].GetString());
      actual[k] = d["v"]["S"].GetString();
    }
  }
  int mismatches = 0;
  for (const auto& [k, v] : expected) {
    auto it = actual.find(k);
    if (v.empty()) {
      if (it != actual.end() && ++mismatches <= 5)
        ADD_FAILURE() << k << " should be deleted, holds " << it->second;
    } else if (it == actual.end()) {
      if (++mismatches <= 5) ADD_FAILURE() << k << " missing, expected " << v;
    } else if (it->second != v) {
      if (++mismatches <= 5) ADD_FAILURE() << k << " holds " << it->second << ", expected " << v;
    }
  }
  for (const auto& [k, v] : actual) {
    if (!expected.count(k) && ++mismatches <= 5) ADD_FAILURE() << "unexpected item " << k;
  }
  EXPECT_EQ(mismatches, 0);

  auto m = ScrapeMetrics(*sidecar);
  ASSERT_TRUE(m.ok()) << m.status();
  const double batches = MetricSum(*m, "dynamo_batcher_batches_sent_total");
  const double written = MetricSum(*m, "dynamo_batcher_ops_written_total");
  const double coalesced = MetricSum(*m, "dynamo_batcher_ops_coalesced_total");
  const double unprocessed = MetricSum(*m, "dynamo_batcher_unprocessed_items_total");
  const double received = MetricSum(*m, "dynamo_batcher_ops_received_total");
  EXPECT_EQ(received, total);
  EXPECT_EQ(written, outcomes[v1::WRITTEN]);
  EXPECT_EQ(coalesced, outcomes[v1::COALESCED]);
  EXPECT_GT(coalesced, 0) << "repeated keys arriving while buffered must coalesce";
  const double sent_items = written + unprocessed;
  const double max_calls = std::ceil(sent_items / 25.0) * 1.05;
  EXPECT_LE(batches, max_calls) << "mean batch size " << sent_items / batches;
  EXPECT_GE(sent_items / batches, 24.0);
  std::printf(
      "[figures] %d ops over %d streams in %.2f s = %.0f ops/s; written %.0f, coalesced %.0f; "
      "%.0f BatchWriteItem calls (mean %.2f items/call) vs %d calls one-per-op (%.1fx fewer)\n",
      total, kStreams, seconds, total / seconds, written, coalesced, batches, sent_items / batches,
      total, total / batches);
}

TEST_F(EndToEnd, EachRejectionRuleThroughGrpcLeavesOtherOpsUntouched) {
  auto sidecar = Start();
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  auto stub = v1::WriteBatcher::NewStub(sidecar->Channel());
  grpc::ClientContext ctx;
  auto stream = stub->Write(&ctx);

  struct Case {
    std::string expect_code;
    std::function<void(v1::WriteOp*)> fill;
  };
  auto key = [](v1::WriteOp* op, const std::string& pk) {
    op->set_table("events");
    (*op->mutable_put()->mutable_attributes())["pk"] = S(pk);
    (*op->mutable_put()->mutable_attributes())["sk"] = N("1");
  };
  std::vector<Case> cases = {
      {"", [&](v1::WriteOp* op) { key(op, "good-1"); }},
      {"UnknownTable",
       [&](v1::WriteOp* op) {
         key(op, "x");
         op->set_table("nope");
       }},
      {"KeyMissing",
       [&](v1::WriteOp* op) {
         op->set_table("events");
         (*op->mutable_put()->mutable_attributes())["pk"] = S("x");
       }},
      {"KeyTypeMismatch",
       [&](v1::WriteOp* op) {
         key(op, "x");
         (*op->mutable_put()->mutable_attributes())["sk"] = S("notanumber");
       }},
      {"EmptyAttributeValue",
       [&](v1::WriteOp* op) {
         key(op, "x");
         (*op->mutable_put()->mutable_attributes())["a"] = v1::AttributeValue();
       }},
      {"EmptySet",
       [&](v1::WriteOp* op) {
         key(op, "x");
         (*op->mutable_put()->mutable_attributes())["a"].mutable_ss();
       }},
      {"DuplicateSetMember",
       [&](v1::WriteOp* op) {
         key(op, "x");
         auto* ns = (*op->mutable_put()->mutable_attributes())["a"].mutable_ns();
         ns->add_values("1");
         ns->add_values("1.0");
       }},
      {"InvalidNumber",
       [&](v1::WriteOp* op) {
         key(op, "x");
         (*op->mutable_put()->mutable_attributes())["a"] = N("1e200");
       }},
      {"InvalidNumber",
       [&](v1::WriteOp* op) {
         key(op, "x");
         (*op->mutable_put()->mutable_attributes())["a"] =
             N("12345678901234567890123456789012345678901");
       }},
      {"EmptyKeyValue", [&](v1::WriteOp* op) { key(op, ""); }},
      {"ItemTooLarge",
       [&](v1::WriteOp* op) {
         key(op, "x");
         (*op->mutable_put()->mutable_attributes())["big"] = S(std::string(401 * 1024, 'z'));
       }},
      {"NestingTooDeep",
       [&](v1::WriteOp* op) {
         key(op, "x");
         v1::AttributeValue* v = &(*op->mutable_put()->mutable_attributes())["deep"];
         for (int i = 0; i < 40; ++i) v = v->mutable_l()->add_values();
         v->set_s("bottom");
       }},
      {"NoOperation", [&](v1::WriteOp* op) { op->set_table("events"); }},
      {"", [&](v1::WriteOp* op) { key(op, "good-2"); }},
  };
  v1::WriteRequest req;
  for (size_t i = 0; i < cases.size(); ++i) {
    v1::WriteOp* op = req.add_ops();
    cases[i].fill(op);
    op->set_id(i + 1);
  }
  ASSERT_TRUE(stream->Write(req));
  stream->WritesDone();
  std::map<uint64_t, v1::WriteResult> got;
  v1::WriteResponse resp;
  while (stream->Read(&resp)) {
    for (const auto& r : resp.results()) {
      EXPECT_TRUE(got.emplace(r.id(), r).second) << "two results for op " << r.id();
    }
  }
  ASSERT_TRUE(stream->Finish().ok());
  ASSERT_EQ(got.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& r = got[i + 1];
    if (cases[i].expect_code.empty()) {
      EXPECT_EQ(r.outcome(), v1::WRITTEN) << "op " << i + 1 << ": " << r.message();
    } else {
      EXPECT_EQ(r.outcome(), v1::REJECTED) << "op " << i + 1;
      EXPECT_EQ(r.error_code(), cases[i].expect_code) << "op " << i + 1 << ": " << r.message();
      EXPECT_THAT(r.message(), HasSubstr(absl::StrCat("op ", i + 1))) << r.message();
    }
  }
  auto items = ScanTable(dynalite_.endpoint(), "events");
  ASSERT_TRUE(items.ok());
  EXPECT_EQ(items->size(), 2u);
  auto m = ScrapeMetrics(*sidecar);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(MetricSum(*m, "dynamo_batcher_ops_rejected_total"), cases.size() - 2);
  EXPECT_EQ(MetricSum(*m, "dynamo_batcher_ops_rejected_total", {{"reason", "UnknownTable"}}), 1);
}

TEST_F(EndToEnd, UnaryPutDeleteAndFlush) {
  auto sidecar = Start("", "2s");
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  auto stub = v1::WriteBatcher::NewStub(sidecar->Channel());

  // Unary Put answers once written; with a 2 s linger, that is Flush's job
  // or the linger's. Send three from threads, then Flush.
  std::vector<std::thread> threads;
  std::vector<v1::WriteResult> results(3);
  std::vector<grpc::Status> statuses(3);
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext ctx;
      v1::PutRequest req;
      req.set_table("users");
      req.set_id(100 + i);
      (*req.mutable_item()->mutable_attributes())["id"] = S(absl::StrCat("u", i));
      (*req.mutable_item()->mutable_attributes())["name"] = S("n");
      statuses[i] = stub->Put(&ctx, req, &results[i]);
    });
  }
  absl::SleepFor(absl::Milliseconds(300));
  grpc::ClientContext fctx;
  v1::FlushRequest freq;
  v1::FlushResponse fresp;
  const absl::Time t0 = absl::Now();
  ASSERT_TRUE(stub->Flush(&fctx, freq, &fresp).ok());
  EXPECT_LT(absl::Now() - t0, absl::Milliseconds(1500)) << "Flush must not wait for linger";
  EXPECT_EQ(fresp.ops(), 3u);
  for (auto& t : threads) t.join();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    EXPECT_EQ(results[i].outcome(), v1::WRITTEN);
    EXPECT_EQ(results[i].id(), 100u + i);
    EXPECT_EQ(results[i].table(), "users");
  }
  // A rejected unary op answers at once with REJECTED.
  {
    grpc::ClientContext ctx;
    v1::DeleteRequest req;
    req.set_table("users");
    (*req.mutable_key()->mutable_attributes())["id"] = N("5");
    v1::WriteResult r;
    ASSERT_TRUE(stub->Delete(&ctx, req, &r).ok());
    EXPECT_EQ(r.outcome(), v1::REJECTED);
    EXPECT_EQ(r.error_code(), "KeyTypeMismatch");
  }
  // Flush of an unknown table is an error naming the field.
  {
    grpc::ClientContext ctx;
    v1::FlushRequest req;
    req.set_table("nope");
    v1::FlushResponse resp;
    grpc::Status s = stub->Flush(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("FlushRequest.table"));
  }
  auto items = ScanTable(dynalite_.endpoint(), "users");
  ASSERT_TRUE(items.ok());
  EXPECT_EQ(items->size(), 3u);
}

TEST_F(EndToEnd, HealthMetricsAndReadiness) {
  auto sidecar = Start();
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  long status = 0;
  std::string base = absl::StrCat("http://127.0.0.1:", sidecar->metrics_port);
  ASSERT_TRUE(HttpGet(base + "/healthz", &status).ok());
  EXPECT_EQ(status, 200);
  // create_tables reached DynamoDB, so the sidecar becomes ready quickly.
  for (int i = 0; i < 100 && status != 200; ++i) absl::SleepFor(absl::Milliseconds(50));
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(HttpGet(base + "/readyz", &status).ok());
    if (status == 200) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(status, 200);
  auto body = HttpGet(base + "/metrics", &status);
  ASSERT_TRUE(body.ok());
  for (const char* name :
       {"dynamo_batcher_ops_received_total", "dynamo_batcher_batch_size",
        "dynamo_batcher_queue_items", "dynamo_batcher_send_rate_limit",
        "dynamo_batcher_inflight_requests", "dynamo_batcher_active_streams",
        "dynamo_batcher_op_latency_seconds", "dynamo_batcher_batch_write_seconds"}) {
    EXPECT_THAT(*body, HasSubstr(name));
  }
}

TEST_F(EndToEnd, KeySchemaFromDescribeTableWhenNotInConfig) {
  ASSERT_TRUE(CreateTable(dynalite_.endpoint(), "orders", "customer:S", "seq:N").ok());
  auto sidecar = StartSidecar(dir_, absl::StrCat(R"(
dynamodb:
  endpoint: )",
                                                 dynalite_.endpoint(), R"(
  credentials: {access_key_id: local, secret_access_key: local}
tables:
  - name: orders
)"));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  EXPECT_THAT(sidecar->process->ReadLog(), HasSubstr("key schema from DescribeTable"));
  auto stub = v1::WriteBatcher::NewStub(sidecar->Channel());
  // Right types per the described schema: written. Wrong type: REJECTED.
  for (const auto& [seq, want] : std::vector<std::pair<v1::AttributeValue, v1::Outcome>>{
           {N("1"), v1::WRITTEN}, {S("one"), v1::REJECTED}}) {
    grpc::ClientContext ctx;
    v1::PutRequest req;
    req.set_table("orders");
    (*req.mutable_item()->mutable_attributes())["customer"] = S("c1");
    (*req.mutable_item()->mutable_attributes())["seq"] = seq;
    v1::WriteResult r;
    ASSERT_TRUE(stub->Put(&ctx, req, &r).ok());
    EXPECT_EQ(r.outcome(), want) << r.message();
  }
  auto items = ScanTable(dynalite_.endpoint(), "orders");
  ASSERT_TRUE(items.ok());
  EXPECT_EQ(items->size(), 1u);
}

TEST_F(EndToEnd, BadConfigExitsNonZeroNamingFileKeyAndReason) {
  std::string path = dir_ + "/bad.yaml";
  { std::ofstream(path) << "tables:\n  - name: events\n    partition_key: {name: pk, type: Q}\n"; }
  ChildProcess p({SidecarBinary(), "--config", path}, dir_ + "/bad.log");
  EXPECT_EQ(p.Wait(absl::Seconds(10)), 2);
  std::string log = p.ReadLog();
  EXPECT_THAT(log, HasSubstr(path));
  EXPECT_THAT(log, HasSubstr("tables[0].partition_key.type"));
  EXPECT_THAT(log, HasSubstr("S, N or B"));
}

}  // namespace
}  // namespace dynamo_batcher::testing
