package dev.dynamobatcher.client;

import dev.dynamobatcher.client.BatcherClient.Result;
import dev.dynamobatcher.v1.Outcome;
import dev.dynamobatcher.v1.WriteBatcherGrpc;
import dev.dynamobatcher.v1.WriteOp;
import dev.dynamobatcher.v1.WriteRequest;
import dev.dynamobatcher.v1.WriteResponse;
import dev.dynamobatcher.v1.WriteResult;
import io.grpc.Server;
import io.grpc.ServerBuilder;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BiFunction;

/**
 * Stream-end handling of {@link BatcherClient} against an in-process fake WriteBatcher on
 * loopback (the real sidecar cannot be made to end a stream with INVALID_ARGUMENT, or to break
 * after answering exactly half a message, on demand; the real-sidecar cases are in
 * tests/integration). A plain main: exits 0 when every check holds, 1 otherwise.
 */
public final class StreamEndTest {
  private static int failures;

  private static void check(boolean ok, String what) {
    System.out.println((ok ? "ok   " : "FAIL ") + what);
    if (!ok) failures++;
  }

  /** A fake whose n-th Write stream (from 0) is handled by handler(n, responses). */
  private static final class Fake extends WriteBatcherGrpc.WriteBatcherImplBase {
    final AtomicInteger streams = new AtomicInteger();
    final BiFunction<Integer, StreamObserver<WriteResponse>, StreamObserver<WriteRequest>> handler;

    Fake(BiFunction<Integer, StreamObserver<WriteResponse>, StreamObserver<WriteRequest>> h) {
      handler = h;
    }

    @Override
    public StreamObserver<WriteRequest> write(StreamObserver<WriteResponse> responses) {
      return handler.apply(streams.getAndIncrement(), responses);
    }
  }

  private abstract static class OnMessage implements StreamObserver<WriteRequest> {
    @Override public void onError(Throwable t) {}
    @Override public void onCompleted() {}
  }

  private static WriteResponse written(List<Long> ids) {
    WriteResponse.Builder b = WriteResponse.newBuilder();
    for (long id : ids) b.addResults(WriteResult.newBuilder().setId(id).setOutcome(Outcome.WRITTEN));
    return b.build();
  }

  private static BatcherClient client(Server server) {
    return new BatcherClient(new BatcherClient.Options()
        .target("127.0.0.1:" + server.getPort())
        .linger(Duration.ofMillis(20))
        .opDeadline(Duration.ofSeconds(5))
        .reconnectBackoff(Duration.ofMillis(10), Duration.ofMillis(50)));
  }

  private static List<Result> results(List<CompletableFuture<Result>> fs) throws Exception {
    List<Result> out = new ArrayList<>();
    for (CompletableFuture<Result> f : fs) {
      try {
        out.add(f.get(3, TimeUnit.SECONDS));
      } catch (java.util.concurrent.TimeoutException e) {
        out.add(null);
      }
    }
    return out;
  }

  static void invalidArgumentStreamEndFailsTheOpsInsteadOfResendingThem() throws Exception {
    Fake fake = new Fake((n, responses) -> new OnMessage() {
      @Override
      public void onNext(WriteRequest r) {
        responses.onError(Status.INVALID_ARGUMENT
            .withDescription("WriteRequest: message does not parse").asRuntimeException());
      }
    });
    Server server = ServerBuilder.forPort(0).addService(fake).build().start();
    BatcherClient c = client(server);
    try {
      List<CompletableFuture<Result>> fs = new ArrayList<>();
      for (int i = 0; i < 3; i++) fs.add(c.put("t", Map.of("pk", BatcherClient.S("k"))));
      List<Result> rs = results(fs);
      for (int i = 0; i < rs.size(); i++) {
        Result r = rs.get(i);
        check(r != null && r.error != null && r.error.getCode() == Status.Code.INVALID_ARGUMENT
                && r.error.getDescription().contains("does not parse"),
            "INVALID_ARGUMENT end: op " + i + " fails with the stream's status (got " + r + ")");
      }
      Thread.sleep(200);
      check(fake.streams.get() == 1,
          "INVALID_ARGUMENT end: 1 stream opened, the refused ops not sent again (got "
              + fake.streams.get() + ")");
    } finally {
      c.close(Duration.ofSeconds(1));
      server.shutdownNow();
    }
  }

  static void brokenStreamResendsOnlyUnansweredOpsInOrder() throws Exception {
    List<Long> second = Collections.synchronizedList(new ArrayList<>());
    Fake fake = new Fake((n, responses) -> new OnMessage() {
      @Override
      public void onNext(WriteRequest r) {
        List<Long> ids = new ArrayList<>();
        for (WriteOp op : r.getOpsList()) ids.add(op.getId());
        if (n == 0) { // answer the first half, then break
          responses.onNext(written(ids.subList(0, ids.size() / 2)));
          responses.onError(Status.UNAVAILABLE.withDescription("connection reset").asRuntimeException());
        } else {
          second.addAll(ids);
          responses.onNext(written(ids));
        }
      }
    });
    Server server = ServerBuilder.forPort(0).addService(fake).build().start();
    BatcherClient c = client(server);
    try {
      List<CompletableFuture<Result>> fs = new ArrayList<>();
      for (int i = 0; i < 10; i++) fs.add(c.put("t", Map.of("pk", BatcherClient.S("k"))));
      List<Result> rs = results(fs);
      boolean allOk = true;
      for (Result r : rs) allOk &= r != null && r.ok();
      check(allOk, "broken stream: every op ends WRITTEN (got " + rs + ")");
      check(second.equals(List.of(6L, 7L, 8L, 9L, 10L)),
          "broken stream: the second stream carries exactly the unanswered ids in order (got "
              + second + ")");
      BatcherClient.Stats s = c.stats();
      check(s.opsResent == 5 && s.reconnects == 1,
          "broken stream: 5 resent, 1 reconnect (got " + s.opsResent + ", " + s.reconnects + ")");
    } finally {
      c.close(Duration.ofSeconds(1));
      server.shutdownNow();
    }
  }

  public static void main(String[] args) throws Exception {
    invalidArgumentStreamEndFailsTheOpsInsteadOfResendingThem();
    brokenStreamResendsOnlyUnansweredOpsInOrder();
    System.out.println(failures == 0 ? "all passed" : failures + " failed");
    System.exit(failures == 0 ? 0 : 1);
  }
}
