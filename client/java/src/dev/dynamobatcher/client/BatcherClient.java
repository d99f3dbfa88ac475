package dev.dynamobatcher.client;

import dev.dynamobatcher.v1.AttributeValue;
import dev.dynamobatcher.v1.FlushRequest;
import dev.dynamobatcher.v1.Item;
import dev.dynamobatcher.v1.Outcome;
import dev.dynamobatcher.v1.WriteBatcherGrpc;
import dev.dynamobatcher.v1.WriteOp;
import dev.dynamobatcher.v1.WriteRequest;
import dev.dynamobatcher.v1.WriteResponse;
import dev.dynamobatcher.v1.WriteResult;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Java client for the dynamo-batcher sidecar.
 *
 * <p>Streams single DynamoDB puts and deletes to the sidecar as cheaply as possible: ops are
 * packed into {@code WriteRequest}s (up to {@code maxOpsPerMessage} ops or {@code
 * maxMessageBytes}, waiting at most {@code linger} for a message to fill) and sent on one
 * long-lived bidirectional {@code Write} stream; each {@code WriteResult} is matched back to its
 * op by a client-assigned id. Every returned future completes exactly once, never exceptionally:
 *
 * <ul>
 *   <li>with the sidecar's outcome (WRITTEN, COALESCED, FAILED, REJECTED), or
 *   <li>with {@link Result#error} set when the client gave up: DEADLINE_EXCEEDED (no result
 *       within {@code opDeadline}, or no in-flight room within it), UNAVAILABLE (the sidecar
 *       could not be reached until {@code opDeadline}), the stream's own status when the sidecar
 *       ended it as non-retryable (e.g. INVALID_ARGUMENT), FAILED_PRECONDITION (put after close),
 *       CANCELLED (close ran out of time).
 * </ul>
 *
 * <p>When the stream breaks, ops without a result are re-sent on a new stream in their original
 * order (puts and deletes are idempotent, and the sidecar answers an older op on a key before a
 * newer one, so a re-send can never overwrite something newer).
 *
 * <p>Ordering: ops go out in the order {@code put}/{@code delete} returned, so "last write wins
 * per key" follows call order (from one thread, or otherwise ordered by the caller).
 *
 * <p>Thread-safety: all methods are thread-safe. Futures complete on gRPC's threads; dependent
 * actions must be quick and must not block on this client.
 *
 * <p>Usage:
 *
 * <pre>{@code
 * try (BatcherClient c = new BatcherClient(new BatcherClient.Options().target("127.0.0.1:50051"))) {
 *   CompletableFuture<Result> f = c.put("events", Map.of("pk", S("user#1"), "n", N("3")));
 *   c.delete("events", Map.of("pk", S("user#0")));
 *   c.flush(Duration.ofSeconds(10));
 *   if (!f.join().ok()) System.err.println(f.join());
 * } // close() flushes first
 * }</pre>
 */
public final class BatcherClient implements AutoCloseable {

  /** Client options; defaults as shown. */
  public static final class Options {
    String target = "127.0.0.1:50051";
    int maxOpsPerMessage = 256;
    int maxMessageBytes = 1 << 20; // well below gRPC's default 4 MiB limit
    Duration linger = Duration.ofMillis(1);
    int maxInflightOps = 100_000;
    Duration opDeadline = Duration.ofSeconds(60);
    Duration reconnectBackoff = Duration.ofMillis(100);
    Duration maxReconnectBackoff = Duration.ofSeconds(2);

    /** gRPC target: "host:port", "dns:///name:port". Plaintext (a sidecar on loopback). */
    public Options target(String v) { target = v; return this; }
    /** Packing limits of one WriteRequest. */
    public Options maxOpsPerMessage(int v) { maxOpsPerMessage = v; return this; }
    public Options maxMessageBytes(int v) { maxMessageBytes = v; return this; }
    /** How long the first op of a message may wait for others to join it. */
    public Options linger(Duration v) { linger = v; return this; }
    /** Ops accepted but not resolved yet; put waits (up to opDeadline) for room. */
    public Options maxInflightOps(int v) { maxInflightOps = v; return this; }
    /** An op without a result this long after put resolves with DEADLINE_EXCEEDED. */
    public Options opDeadline(Duration v) { opDeadline = v; return this; }
    /** Wait before reopening a broken stream, doubled per failure, reset on results. */
    public Options reconnectBackoff(Duration first, Duration max) {
      reconnectBackoff = first;
      maxReconnectBackoff = max;
      return this;
    }
  }

  /** The outcome of one op. */
  public static final class Result {
    /** OUTCOME_UNSPECIFIED when {@link #error} is set. */
    public final Outcome outcome;
    public final String errorCode;
    public final String message;
    public final int attempts;
    /** Non-null only when the client gave up on the op. */
    public final Status error;

    Result(Outcome outcome, String errorCode, String message, int attempts, Status error) {
      this.outcome = outcome;
      this.errorCode = errorCode;
      this.message = message;
      this.attempts = attempts;
      this.error = error;
    }

    static Result of(WriteResult r) {
      return new Result(r.getOutcome(), r.getErrorCode(), r.getMessage(), r.getAttempts(), null);
    }

    static Result failure(Status s) {
      return new Result(Outcome.OUTCOME_UNSPECIFIED, s.getCode().name(),
          s.getDescription() == null ? "" : s.getDescription(), 0, s);
    }

    /** WRITTEN or COALESCED: the key holds this write or a newer one. */
    public boolean ok() {
      return error == null && (outcome == Outcome.WRITTEN || outcome == Outcome.COALESCED);
    }

    @Override
    public String toString() {
      if (error != null) return "client error: " + error;
      StringBuilder s = new StringBuilder(outcome.name());
      if (!errorCode.isEmpty()) s.append(' ').append(errorCode);
      if (!message.isEmpty()) s.append(": ").append(message);
      return s.append(" (attempts ").append(attempts).append(')').toString();
    }
  }

  /** Counters since construction. */
  public static final class Stats {
    public long submitted, resolved, written, coalesced, failed, rejected, clientErrors;
    public long messagesSent, opsSent, opsResent, reconnects, inflight;
  }

  public static AttributeValue S(String v) { return AttributeValue.newBuilder().setS(v).build(); }
  public static AttributeValue N(String v) { return AttributeValue.newBuilder().setN(v).build(); }
  public static AttributeValue Bool(boolean v) {
    return AttributeValue.newBuilder().setBoolValue(v).build();
  }

  // The framing overhead of one op inside a WriteRequest (tag, length, id).
  private static final int OP_OVERHEAD_BYTES = 16;
  // How long a graceful close waits for the sidecar to end a half-closed stream.
  private static final long HALF_CLOSE_GRACE_MS = 500;

  private static final class Pending {
    final WriteOp op;
    final int bytes;
    final long enqueuedNanos;
    final long deadlineNanos;
    final CompletableFuture<Result> future;
    long sentGen; // stream generation it was last sent on; 0 = never

    Pending(WriteOp op, int bytes, long now, long deadline, CompletableFuture<Result> future) {
      this.op = op;
      this.bytes = bytes;
      this.enqueuedNanos = now;
      this.deadlineNanos = deadline;
      this.future = future;
    }
  }

  /** One Write stream's state, shared with its response observer. */
  private final class StreamState implements ClientResponseObserver<WriteRequest, WriteResponse> {
    final long gen;
    ClientCallStreamObserver<WriteRequest> requests;
    boolean done; // guarded by mu
    boolean progressed; // guarded by mu
    Status status = Status.OK; // guarded by mu

    StreamState(long gen) { this.gen = gen; }

    @Override
    public void beforeStart(ClientCallStreamObserver<WriteRequest> r) {
      requests = r;
      r.setOnReadyHandler(BatcherClient.this::signalAll);
    }

    @Override
    public void onNext(WriteResponse response) {
      List<Runnable> done = new ArrayList<>(response.getResultsCount());
      mu.lock();
      try {
        progressed = true;
        healthy = true;
        for (WriteResult r : response.getResultsList()) {
          Runnable f = resolveLocked(r.getId(), Result.of(r));
          if (f != null) done.add(f);
        }
        changed.signalAll();
      } finally {
        mu.unlock();
      }
      done.forEach(Runnable::run);
    }

    @Override
    public void onError(Throwable t) { end(Status.fromThrowable(t)); }

    @Override
    public void onCompleted() { end(Status.OK); }

    private void end(Status s) {
      mu.lock();
      try {
        done = true;
        status = s;
        changed.signalAll();
      } finally {
        mu.unlock();
      }
    }
  }

  private final Options opts;
  private final ManagedChannel channel;
  private final WriteBatcherGrpc.WriteBatcherStub stub;
  private final Semaphore budget;
  private final Thread streamThread;
  private final Thread reaperThread;

  private final ReentrantLock mu = new ReentrantLock();
  // Signalled on new ops, sends, results, stream ends, flow-control readiness and stop.
  private final Condition changed = mu.newCondition();
  // Guarded by mu:
  private long nextId = 1;
  private final LinkedHashMap<Long, Pending> ops = new LinkedHashMap<>(); // id (= call) order
  private final ArrayDeque<Long> sendQ = new ArrayDeque<>();
  private long queuedBytes;
  private long flushUpto;
  private long gen;
  private boolean healthy;
  private Status lastError;
  private boolean closed;
  private boolean stopping;
  private boolean graceful;
  private final Stats stats = new Stats();

  /** Validates options and starts the client's threads; does not wait for the sidecar. */
  public BatcherClient(Options o) {
    if (o.target == null || o.target.isEmpty()) {
      throw new IllegalArgumentException("target: must not be empty");
    }
    if (o.maxOpsPerMessage < 1) {
      throw new IllegalArgumentException("maxOpsPerMessage: must be >= 1, got " + o.maxOpsPerMessage);
    }
    if (o.maxMessageBytes < 1024 || o.maxMessageBytes > (4 << 20) - 1024) {
      throw new IllegalArgumentException(
          "maxMessageBytes: must be in [1024, 4 MiB - 1024], got " + o.maxMessageBytes);
    }
    if (o.maxInflightOps < 1) {
      throw new IllegalArgumentException("maxInflightOps: must be >= 1, got " + o.maxInflightOps);
    }
    if (o.linger.isNegative() || o.opDeadline.isNegative() || o.opDeadline.isZero()) {
      throw new IllegalArgumentException("linger must be >= 0 and opDeadline > 0");
    }
    if (o.reconnectBackoff.isNegative() || o.reconnectBackoff.isZero()
        || o.maxReconnectBackoff.compareTo(o.reconnectBackoff) < 0) {
      throw new IllegalArgumentException(
          "reconnectBackoff: must be > 0 and <= maxReconnectBackoff");
    }
    opts = o;
    channel = ManagedChannelBuilder.forTarget(o.target).usePlaintext().build();
    stub = WriteBatcherGrpc.newStub(channel);
    budget = new Semaphore(o.maxInflightOps);
    streamThread = new Thread(this::runStreams, "dynamo-batcher-stream");
    streamThread.setDaemon(true);
    reaperThread = new Thread(this::reap, "dynamo-batcher-reaper");
    reaperThread.setDaemon(true);
    streamThread.start();
    reaperThread.start();
  }

  /** Writes {@code item} to {@code table}. */
  public CompletableFuture<Result> put(String table, Map<String, AttributeValue> item) {
    return submit(WriteOp.newBuilder().setTable(table)
        .setPut(Item.newBuilder().putAllAttributes(item)));
  }

  /** Deletes the item with {@code key} from {@code table}. */
  public CompletableFuture<Result> delete(String table, Map<String, AttributeValue> key) {
    return submit(WriteOp.newBuilder().setTable(table)
        .setDeleteKey(Item.newBuilder().putAllAttributes(key)));
  }

  private CompletableFuture<Result> failNow(Status s) {
    mu.lock();
    try {
      stats.submitted++;
      stats.resolved++;
      stats.clientErrors++;
    } finally {
      mu.unlock();
    }
    return CompletableFuture.completedFuture(Result.failure(s));
  }

  private CompletableFuture<Result> submit(WriteOp.Builder b) {
    if (isClosed()) return failNow(Status.FAILED_PRECONDITION.withDescription("client is closed"));
    try {
      // Bounded in-flight ops: wait for room.
      if (!budget.tryAcquire(opts.opDeadline.toNanos(), TimeUnit.NANOSECONDS)) {
        return failNow(Status.DEADLINE_EXCEEDED.withDescription(
            "in-flight budget (maxInflightOps=" + opts.maxInflightOps + ") stayed full for opDeadline"));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return failNow(Status.CANCELLED.withDescription("interrupted waiting for in-flight room"));
    }
    CompletableFuture<Result> f = new CompletableFuture<>();
    long now = System.nanoTime();
    mu.lock();
    try {
      if (closed) {
        budget.release();
        f = null;
      } else {
        long id = nextId++;
        WriteOp op = b.setId(id).build();
        int bytes = op.getSerializedSize() + OP_OVERHEAD_BYTES;
        ops.put(id, new Pending(op, bytes, now, now + opts.opDeadline.toNanos(), f));
        sendQ.addLast(id);
        queuedBytes += bytes;
        stats.submitted++;
        changed.signalAll();
      }
    } finally {
      mu.unlock();
    }
    return f != null ? f : failNow(Status.FAILED_PRECONDITION.withDescription("client is closed"));
  }

  private boolean isClosed() {
    mu.lock();
    try {
      return closed;
    } finally {
      mu.unlock();
    }
  }

  private void signalAll() {
    mu.lock();
    try {
      changed.signalAll();
    } finally {
      mu.unlock();
    }
  }

  // Takes op `id` out of the pending set; the caller runs the returned action outside mu.
  private Runnable resolveLocked(long id, Result r) {
    Pending p = ops.remove(id);
    if (p == null) return null; // already resolved (expired, or a duplicate result)
    stats.resolved++;
    if (r.error != null) {
      stats.clientErrors++;
    } else {
      switch (r.outcome) {
        case WRITTEN: stats.written++; break;
        case COALESCED: stats.coalesced++; break;
        case FAILED: stats.failed++; break;
        case REJECTED: stats.rejected++; break;
        default: break;
      }
    }
    return () -> {
      budget.release();
      p.future.complete(r);
    };
  }

  // Stream ends that re-sending the same ops cannot fix.
  private static boolean permanent(Status s) {
    switch (s.getCode()) {
      case INVALID_ARGUMENT:
      case UNIMPLEMENTED:
      case PERMISSION_DENIED:
      case UNAUTHENTICATED:
      case FAILED_PRECONDITION:
      case OUT_OF_RANGE:
        return true;
      default:
        return false;
    }
  }

  // Owns the stream: opens it when there are ops, sends, and after a break re-queues every
  // unresolved op in call order on a new stream.
  private void runStreams() {
    long backoff = opts.reconnectBackoff.toNanos();
    boolean first = true;
    while (true) {
      StreamState st;
      mu.lock();
      try {
        while (ops.isEmpty() && !stopping) changed.awaitUninterruptibly(); // idle: no stream
        if (stopping) return;
        st = new StreamState(++gen);
        sendQ.clear();
        queuedBytes = 0;
        for (Map.Entry<Long, Pending> e : ops.entrySet()) {
          sendQ.addLast(e.getKey());
          queuedBytes += e.getValue().bytes;
          if (e.getValue().sentGen != 0) stats.opsResent++;
        }
        if (!first) stats.reconnects++;
        first = false;
      } finally {
        mu.unlock();
      }
      stub.write(st);
      boolean gracefulEnd = sendLoop(st);
      if (gracefulEnd) st.requests.onCompleted();
      List<Runnable> failed = new ArrayList<>();
      boolean progressed;
      boolean stop;
      mu.lock();
      try {
        long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(HALF_CLOSE_GRACE_MS);
        while (gracefulEnd && !st.done && System.nanoTime() < until) {
          awaitNanos(until - System.nanoTime());
        }
        if (!st.done) {
          mu.unlock();
          try {
            st.requests.cancel("client closing the stream", null);
          } finally {
            mu.lock();
          }
          while (!st.done) changed.awaitUninterruptibly();
        }
        healthy = false;
        if (!st.status.isOk()) lastError = st.status;
        if (permanent(st.status)) {
          // The sidecar refused what this stream carried (e.g. a message it could not parse):
          // re-sending would only repeat that, so the ops it carried fail with its status.
          List<Long> ids = new ArrayList<>();
          for (Map.Entry<Long, Pending> e : ops.entrySet()) {
            if (e.getValue().sentGen == st.gen) ids.add(e.getKey());
          }
          for (long id : ids) failed.add(resolveLocked(id, Result.failure(st.status)));
          changed.signalAll();
        }
        progressed = st.progressed;
        stop = stopping;
      } finally {
        mu.unlock();
      }
      failed.forEach(Runnable::run);
      if (stop) return;
      if (progressed) backoff = opts.reconnectBackoff.toNanos();
      mu.lock();
      try {
        long until = System.nanoTime() + backoff;
        while (!stopping && System.nanoTime() < until) awaitNanos(until - System.nanoTime());
      } finally {
        mu.unlock();
      }
      backoff = Math.min(backoff * 2, opts.maxReconnectBackoff.toNanos());
    }
  }

  private void awaitNanos(long nanos) {
    try {
      changed.awaitNanos(nanos);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  // Packs queued ops into messages until the stream ends (false) or the client stops (true
  // when it stops gracefully).
  private boolean sendLoop(StreamState st) {
    long linger = opts.linger.toNanos();
    while (true) {
      WriteRequest.Builder req = WriteRequest.newBuilder();
      mu.lock();
      try {
        if (stopping) return graceful;
        if (st.done) return false;
        while (!sendQ.isEmpty() && !ops.containsKey(sendQ.peekFirst())) {
          sendQ.pollFirst(); // resolved (expired) while queued
        }
        if (sendQ.isEmpty()) {
          changed.awaitUninterruptibly();
          continue;
        }
        long front = sendQ.peekFirst();
        long wait = ops.get(front).enqueuedNanos + linger - System.nanoTime();
        if (sendQ.size() < opts.maxOpsPerMessage && queuedBytes < opts.maxMessageBytes
            && flushUpto < front && wait > 0) {
          awaitNanos(wait);
          continue;
        }
        // gRPC flow control: the sidecar's backpressure reaches put() through the budget.
        if (!st.requests.isReady()) {
          awaitNanos(TimeUnit.MILLISECONDS.toNanos(50));
          continue;
        }
        int bytes = 0;
        while (!sendQ.isEmpty() && req.getOpsCount() < opts.maxOpsPerMessage) {
          Pending p = ops.get(sendQ.peekFirst());
          if (p == null) {
            sendQ.pollFirst();
            continue;
          }
          if (req.getOpsCount() > 0 && bytes + p.bytes > opts.maxMessageBytes) break;
          bytes += p.bytes;
          queuedBytes -= p.bytes;
          p.sentGen = st.gen;
          req.addOps(p.op);
          sendQ.pollFirst();
        }
      } finally {
        mu.unlock();
      }
      if (req.getOpsCount() == 0) continue;
      st.requests.onNext(req.build());
      mu.lock();
      try {
        healthy = true;
        stats.messagesSent++;
        stats.opsSent += req.getOpsCount();
        changed.signalAll();
      } finally {
        mu.unlock();
      }
    }
  }

  // Resolves ops that had no result within opDeadline.
  private void reap() {
    while (true) {
      try {
        Thread.sleep(50);
      } catch (InterruptedException e) {
        return;
      }
      List<Runnable> expired = new ArrayList<>();
      mu.lock();
      try {
        if (stopping) return;
        long now = System.nanoTime();
        List<Long> ids = new ArrayList<>();
        for (Iterator<Map.Entry<Long, Pending>> it = ops.entrySet().iterator(); it.hasNext(); ) {
          Map.Entry<Long, Pending> e = it.next(); // call order is deadline order
          if (e.getValue().deadlineNanos - now > 0) break;
          ids.add(e.getKey());
        }
        Status s = healthy || lastError == null
            ? Status.DEADLINE_EXCEEDED.withDescription("no result from the sidecar within opDeadline")
            : Status.UNAVAILABLE.withDescription(
                "sidecar unreachable until opDeadline: " + lastError);
        for (long id : ids) expired.add(resolveLocked(id, Result.failure(s)));
        if (!ids.isEmpty()) changed.signalAll();
      } finally {
        mu.unlock();
      }
      expired.forEach(Runnable::run);
    }
  }

  /**
   * Sends what the client holds now without lingering, asks the sidecar to send its buffers and
   * waits until every op submitted before the call is resolved. Returns false on timeout.
   */
  public boolean flush(Duration timeout) {
    long until = System.nanoTime() + timeout.toNanos();
    long upto;
    mu.lock();
    try {
      upto = nextId - 1;
      flushUpto = Math.max(flushUpto, upto);
      changed.signalAll();
      // Wait until sent, so the sidecar's Flush covers them.
      while (true) {
        Long front = null;
        for (Long id : sendQ) {
          if (ops.containsKey(id)) {
            front = id;
            break;
          }
        }
        if (front == null || front > upto) break;
        if (System.nanoTime() >= until) return false;
        awaitNanos(until - System.nanoTime());
      }
    } finally {
      mu.unlock();
    }
    try {
      WriteBatcherGrpc.newBlockingStub(channel)
          .withDeadlineAfter(Math.max(1, until - System.nanoTime()), TimeUnit.NANOSECONDS)
          .flush(FlushRequest.getDefaultInstance());
    } catch (RuntimeException e) {
      // Only costs the sidecar's linger; the results still come.
    }
    mu.lock();
    try {
      while (true) {
        Iterator<Long> it = ops.keySet().iterator();
        if (!it.hasNext() || it.next() > upto) return true;
        if (System.nanoTime() >= until) return false;
        awaitNanos(until - System.nanoTime());
      }
    } finally {
      mu.unlock();
    }
  }

  /**
   * Refuses new ops (FAILED_PRECONDITION), flushes for up to {@code timeout}, then stops; ops
   * still unresolved get CANCELLED. Returns whether the flush completed. Idempotent.
   */
  public boolean close(Duration timeout) {
    mu.lock();
    try {
      if (closed) return true;
      closed = true;
    } finally {
      mu.unlock();
    }
    boolean flushed = flush(timeout);
    mu.lock();
    try {
      stopping = true;
      graceful = flushed;
      changed.signalAll();
    } finally {
      mu.unlock();
    }
    try {
      streamThread.join();
      reaperThread.interrupt();
      reaperThread.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    List<Runnable> cancelled = new ArrayList<>();
    mu.lock();
    try {
      for (long id : new ArrayList<>(ops.keySet())) {
        cancelled.add(resolveLocked(id, Result.failure(
            Status.CANCELLED.withDescription("client closed before the sidecar answered"))));
      }
      sendQ.clear();
    } finally {
      mu.unlock();
    }
    cancelled.forEach(Runnable::run);
    channel.shutdownNow();
    return flushed;
  }

  /** {@code close(Duration.ofSeconds(30))}. */
  @Override
  public void close() { close(Duration.ofSeconds(30)); }

  /** A snapshot of the counters. */
  public Stats stats() {
    mu.lock();
    try {
      Stats s = new Stats();
      s.submitted = stats.submitted;
      s.resolved = stats.resolved;
      s.written = stats.written;
      s.coalesced = stats.coalesced;
      s.failed = stats.failed;
      s.rejected = stats.rejected;
      s.clientErrors = stats.clientErrors;
      s.messagesSent = stats.messagesSent;
      s.opsSent = stats.opsSent;
      s.opsResent = stats.opsResent;
      s.reconnects = stats.reconnects;
      s.inflight = ops.size();
      return s;
    } finally {
      mu.unlock();
    }
  }

  /** The client's channel (e.g. for health checks). */
  public ManagedChannel channel() { return channel; }
}
