package dev.dynamobatcher.client;

import static dev.dynamobatcher.client.BatcherClient.N;
import static dev.dynamobatcher.client.BatcherClient.S;

import dev.dynamobatcher.client.BatcherClient.Result;
import dev.dynamobatcher.v1.Outcome;
import io.grpc.Status;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Streams puts and deletes to the dynamo-batcher sidecar through {@link BatcherClient} and checks
 * every result.
 *
 * <pre>
 *   java -cp "$(cat build/client-java/classpath)" dev.dynamobatcher.client.Example \
 *       --target 127.0.0.1:50051 --table events
 * </pre>
 *
 * Modes (--mode): example (writes pk=java#0..N-1 with value "v1", overwrites the first 5 with
 * "v2", deletes the last 5); stress (--workers threads write --ops puts/deletes, 1 in 10 a delete,
 * over --keys shared keys, optionally paced at --rate ops/s; the expected rows, last write per key
 * in call order, go to --expect-out as key TAB value); outcomes (an op to an unknown table, an
 * item without its key, 10 puts to one key in one message); bench (--ops puts over --keys keys at
 * --ops-per-message, default 64; prints ops/s). Exits 0 when every op is WRITTEN or COALESCED
 * (outcomes: when each came back as expected), 1 otherwise, 3 when the sidecar is unreachable.
 */
public final class Example {
  private final Map<String, String> flags = new HashMap<>();

  private String flag(String name, String def) { return flags.getOrDefault(name, def); }

  private int intFlag(String name, int def) {
    String v = flags.get(name);
    try {
      return v == null ? def : Integer.parseInt(v);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("--" + name + ": not an integer: " + v);
    }
  }

  /** Counts outcomes; thread-safe. */
  private static final class Tally {
    long written, coalesced, unreachable;
    final List<String> unexpected = new ArrayList<>();

    synchronized void add(String what, Result r) {
      if (r.error == null && r.outcome == Outcome.WRITTEN) {
        written++;
      } else if (r.error == null && r.outcome == Outcome.COALESCED) {
        coalesced++;
      } else {
        if (r.error != null && r.error.getCode() == Status.Code.UNAVAILABLE) unreachable++;
        unexpected.add(what + ": " + r);
      }
    }

    synchronized int exitCode(long total) {
      for (int i = 0; i < unexpected.size(); i++) {
        if (i == 10) {
          System.out.println("  ... " + (unexpected.size() - 10) + " more");
          break;
        }
        System.out.println("  unexpected: " + unexpected.get(i));
      }
      if (unexpected.isEmpty()) return 0;
      return unreachable == total ? 3 : 1;
    }
  }

  public static void main(String[] args) throws Exception {
    Example ex = new Example();
    for (int i = 0; i < args.length; i++) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        System.err.println("java example: expected --name value, got " + args[i]);
        System.exit(1);
      }
      ex.flags.put(args[i].substring(2), args[++i]);
    }
    System.exit(ex.run());
  }

  private String table;
  private String key;
  private String prefix;

  private int run() throws Exception {
    String mode = flag("mode", "example");
    table = flag("table", "events");
    key = flag("key", "pk");
    prefix = flag("prefix", "java");
    int perMsg = intFlag("ops-per-message", mode.equals("bench") ? 64 : 256);
    BatcherClient.Options o = new BatcherClient.Options()
        .target(flag("target", "127.0.0.1:50051"))
        .maxOpsPerMessage(perMsg)
        .opDeadline(Duration.ofSeconds(intFlag("op-deadline-s", 60)));
    if (mode.equals("outcomes")) o.linger(Duration.ofMillis(50)); // same-key puts share a message
    BatcherClient c = new BatcherClient(o);
    int rc;
    try {
      switch (mode) {
        case "example": rc = example(c); break;
        case "stress": rc = stress(c); break;
        case "outcomes": rc = outcomes(c); break;
        case "bench": rc = bench(c, perMsg); break;
        default:
          System.err.println("java example: --mode " + mode
              + ": must be example, stress, outcomes or bench");
          rc = 1;
      }
    } finally {
      c.close(Duration.ofSeconds(10));
    }
    return rc;
  }

  private int example(BatcherClient c) {
    int items = intFlag("items", 100);
    List<CompletableFuture<Result>> futures = new ArrayList<>();
    List<String> names = new ArrayList<>();
    for (int pass = 0; pass < 2; pass++) {
      for (int n = 0; n < (pass == 0 ? items : Math.min(5, items)); n++) {
        String k = prefix + "#" + n;
        futures.add(c.put(table, Map.of(key, S(k), "value", S(pass == 0 ? "v1" : "v2"),
            "source", S("java"), "n", N(Integer.toString(n)))));
        names.add("put " + k);
      }
    }
    for (int n = Math.max(0, items - 5); n < items; n++) {
      String k = prefix + "#" + n;
      futures.add(c.delete(table, Map.of(key, S(k))));
      names.add("delete " + k);
    }
    Tally t = new Tally();
    for (int i = 0; i < futures.size(); i++) t.add(names.get(i), futures.get(i).join());
    System.out.printf("java example: %d ops, %d written, %d coalesced, %d unexpected%n",
        futures.size(), t.written, t.coalesced, t.unexpected.size());
    return t.exitCode(futures.size());
  }

  private int stress(BatcherClient c) throws Exception {
    int workers = intFlag("workers", 8);
    int keys = intFlag("keys", 200);
    int total = intFlag("ops", 4000);
    int rate = intFlag("rate", 0);
    long seed = intFlag("seed", 1);
    Tally t = new Tally();
    Object order = new Object(); // makes call order = recorded order across threads
    Map<String, String> last = new HashMap<>();
    CountDownLatch results = new CountDownLatch(total);
    long start = System.nanoTime();
    AtomicLong issued = new AtomicLong();
    List<Thread> threads = new ArrayList<>();
    for (int w = 0; w < workers; w++) {
      final int worker = w;
      final int n = total / workers + (w < total % workers ? 1 : 0);
      Thread th = new Thread(() -> {
        Random rnd = new Random(seed * 1000 + worker);
        for (int i = 0; i < n; i++) {
          if (rate > 0) { // pace all threads together at `rate` ops/s
            long due = start + issued.getAndIncrement() * 1_000_000_000L / rate;
            long sleep = due - System.nanoTime();
            if (sleep > 0) {
              try {
                Thread.sleep(sleep / 1_000_000, (int) (sleep % 1_000_000));
              } catch (InterruptedException e) {
                return;
              }
            }
          }
          String k = prefix + "#" + rnd.nextInt(keys);
          boolean del = rnd.nextInt(10) == 0;
          String v = "w" + worker + "-" + i;
          String what = (del ? "delete " : "put ") + k + "=" + v;
          CompletableFuture<Result> f;
          synchronized (order) {
            if (del) {
              last.put(k, "");
              f = c.delete(table, Map.of(key, S(k)));
            } else {
              last.put(k, v);
              f = c.put(table, Map.of(key, S(k), "v", S(v)));
            }
          }
          f.thenAccept(r -> {
            t.add(what, r);
            results.countDown();
          });
        }
      });
      threads.add(th);
      th.start();
    }
    for (Thread th : threads) th.join();
    results.await();
    String out = flags.get("expect-out");
    if (out != null) {
      StringBuilder sb = new StringBuilder();
      for (Map.Entry<String, String> e : new TreeMap<>(last).entrySet()) {
        if (!e.getValue().isEmpty()) sb.append(e.getKey()).append('\t').append(e.getValue()).append('\n');
      }
      Files.write(Paths.get(out), sb.toString().getBytes(StandardCharsets.UTF_8));
    }
    BatcherClient.Stats s = c.stats();
    System.out.printf(
        "java stress: %d ops, %d written, %d coalesced, %d unexpected, %d resent, %d reconnects%n",
        total, t.written, t.coalesced, t.unexpected.size(), s.opsResent, s.reconnects);
    return t.exitCode(total);
  }

  private int outcomes(BatcherClient c) {
    CompletableFuture<Result> unknown = c.put("no_such_table", Map.of(key, S("x")));
    CompletableFuture<Result> noKey = c.put(table, Map.of("other", S("x")));
    List<CompletableFuture<Result>> same = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      same.add(c.put(table, Map.of(key, S(prefix + "#same"), "v", S("s" + i))));
    }
    boolean ok = true;
    Result u = unknown.join();
    System.out.println("unknown table: " + u.outcome + " " + u.errorCode);
    ok &= u.error == null && u.outcome == Outcome.REJECTED;
    Result k = noKey.join();
    System.out.println("missing key: " + k.outcome + " " + k.errorCode);
    ok &= k.error == null && k.outcome == Outcome.REJECTED;
    int coalesced = 0, written = 0;
    for (int i = 0; i < same.size(); i++) {
      Result r = same.get(i).join();
      if (r.outcome == Outcome.COALESCED) coalesced++;
      if (r.outcome == Outcome.WRITTEN) written++;
      Outcome want = i == same.size() - 1 ? Outcome.WRITTEN : Outcome.COALESCED;
      ok &= r.error == null && r.outcome == want;
    }
    System.out.printf("same key: %d COALESCED, %d WRITTEN%n", coalesced, written);
    return ok ? 0 : 1;
  }

  private int bench(BatcherClient c, int perMsg) throws Exception {
    int total = intFlag("ops", 200000);
    int keys = intFlag("keys", 100000);
    CountDownLatch done = new CountDownLatch(total);
    AtomicLong bad = new AtomicLong();
    long start = System.nanoTime();
    for (int i = 0; i < total; i++) {
      c.put(table, Map.of(key, S(prefix + "#" + (i % keys)), "v", S("b" + i)))
          .thenAccept(r -> {
            if (!r.ok()) bad.incrementAndGet();
            done.countDown();
          });
    }
    done.await();
    double secs = (System.nanoTime() - start) / 1e9;
    BatcherClient.Stats s = c.stats();
    System.out.printf(
        "java bench: %d ops in %.2fs = %.0f ops/s at %d ops/message (%.1f ops/message sent), %d not ok%n",
        total, secs, total / secs, perMsg, (double) s.opsSent / s.messagesSent, bad.get());
    return bad.get() == 0 ? 0 : 1;
  }
}
