// Package batcher is a Go client for the dynamo-batcher sidecar.
//
// It streams single DynamoDB puts and deletes to the sidecar as cheaply as
// possible: ops are packed into WriteRequests (up to MaxOpsPerMessage ops or
// MaxMessageBytes, waiting at most Linger for a message to fill) and sent on
// one long-lived bidirectional Write stream; each WriteResult is matched back
// to its op by a client-assigned id. Every op resolves exactly once:
//   - with the sidecar's outcome (WRITTEN, COALESCED, FAILED, REJECTED), or
//   - with Result.Err set when the client gave up: codes.DeadlineExceeded (no
//     result within OpDeadline), codes.Unavailable (the sidecar could not be
//     reached until OpDeadline), the stream's own status when the sidecar ended
//     it as non-retryable (e.g. InvalidArgument), codes.FailedPrecondition
//     (Put after Close), codes.Canceled (Close ran out of time), or the
//     context's error when Put gave up waiting for in-flight room.
//
// When the stream breaks, ops without a result are re-sent on a new stream in
// their original order (puts and deletes are idempotent, and the sidecar
// answers an older op on a key before a newer one, so nothing newer can be
// overwritten by a re-send).
//
// Ordering: ops go out in the order Put/Delete returned, so "last write wins
// per key" follows the order of calls (from one goroutine, or otherwise
// ordered by the caller).
//
// Thread-safety: all methods are safe for concurrent use. Callbacks run on
// the client's goroutines; they must be quick and must not call a blocking
// method (Flush, Close, or a Put that may wait for room) of the same client.
//
// Usage:
//
//	c, err := batcher.New(batcher.Options{Target: "127.0.0.1:50051"})
//	if err != nil { ... }
//	res := c.Put(ctx, "events", batcher.Item{"pk": batcher.S("user#1"), "n": batcher.N("3")})
//	c.DeleteFunc(ctx, "events", batcher.Item{"pk": batcher.S("user#0")}, func(r batcher.Result) {
//		if !r.OK() { log.Print(r) }
//	})
//	err = c.Close(ctx) // flushes first
//	r := <-res         // r.OK(): WRITTEN or COALESCED
package batcher

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	pb "github.com/dynamo-batcher/dynamo-batcher/gen/go/dynamobatcher/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Options configures a Client. Zero values take the defaults shown.
type Options struct {
	// gRPC target: "host:port", "dns:///name:port", "unix:///path/to.sock".
	Target string // "127.0.0.1:50051"
	// Packing limits of one WriteRequest.
	MaxOpsPerMessage int // 256
	MaxMessageBytes  int // 1 MiB, well below gRPC's default 4 MiB limit
	// How long the first op of a message may wait for others to join it.
	// Negative: no wait.
	Linger time.Duration // 1ms
	// Ops accepted but not resolved yet; Put waits (up to its context) for room.
	MaxInflightOps int // 100000
	// An op without a result this long after Put resolves with
	// DeadlineExceeded (Unavailable when no stream could be opened).
	OpDeadline time.Duration // 60s
	// Wait before reopening a broken stream, doubled per consecutive failure
	// up to MaxReconnectBackoff; reset once a stream delivers results.
	ReconnectBackoff    time.Duration // 100ms
	MaxReconnectBackoff time.Duration // 2s
	// Extra dial options; without any transport credentials option the
	// connection is plaintext (the usual choice for a sidecar on loopback).
	DialOptions []grpc.DialOption
}

// Result is the outcome of one op.
type Result struct {
	Outcome   pb.Outcome // OUTCOME_UNSPECIFIED when Err is set
	ErrorCode string
	Message   string
	Attempts  uint32
	// Non-nil only when the client gave up on the op (a gRPC status error).
	Err error
}

// OK reports WRITTEN or COALESCED: the key holds this write or a newer one.
func (r Result) OK() bool {
	return r.Err == nil && (r.Outcome == pb.Outcome_WRITTEN || r.Outcome == pb.Outcome_COALESCED)
}

func (r Result) String() string {
	if r.Err != nil {
		return "client error: " + r.Err.Error()
	}
	s := r.Outcome.String()
	if r.ErrorCode != "" {
		s += " " + r.ErrorCode
	}
	if r.Message != "" {
		s += ": " + r.Message
	}
	return fmt.Sprintf("%s (attempts %d)", s, r.Attempts)
}

// Stats are counters since New.
type Stats struct {
	Submitted, Resolved                  uint64
	Written, Coalesced, Failed, Rejected uint64
	ClientErrors                         uint64 // resolved with Result.Err
	MessagesSent, OpsSent                uint64
	OpsResent                            uint64 // sent again after a stream broke
	Reconnects                           uint64 // streams opened after the first
	Inflight                             uint64
}

// The framing overhead of one op inside a WriteRequest (tag, length, id).
const opOverheadBytes = 16

// How long a graceful close waits for the sidecar to end a half-closed stream.
const halfCloseGrace = 500 * time.Millisecond

type pending struct {
	op       *pb.WriteOp
	bytes    int
	enqueued time.Time
	deadline time.Time
	cb       func(Result)
	sentGen  uint64 // stream generation it was last sent on; 0 = never sent
}

// Client streams ops to one sidecar. Create with New; Close when done.
type Client struct {
	opts   Options
	conn   *grpc.ClientConn
	stub   pb.WriteBatcherClient
	budget chan struct{} // one token per in-flight op

	mu        sync.Mutex
	nextID    uint64
	ops       map[uint64]*pending
	order     []uint64 // ids in submission order; resolved ones are skipped lazily
	sendQ     []uint64 // ids to send on the current stream, in order
	queuedB   int
	flushUpto uint64
	gen       uint64 // current stream generation
	healthy   bool   // a stream carried traffic since the last break
	lastErr   error
	closed    bool
	stopping  bool
	wake      chan struct{} // cap 1: new ops, flush requests, stop
	progress  chan struct{} // closed and replaced on sends and resolutions
	stats     Stats

	stopCtx  context.Context
	stopAll  context.CancelFunc
	graceful bool
	done     sync.WaitGroup
}

// New validates the options and starts the client's goroutines. It does not
// wait for the sidecar (ops wait for it up to OpDeadline).
func New(o Options) (*Client, error) {
	if o.Target == "" {
		o.Target = "127.0.0.1:50051"
	}
	if o.MaxOpsPerMessage == 0 {
		o.MaxOpsPerMessage = 256
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 1 << 20
	}
	if o.Linger == 0 {
		o.Linger = time.Millisecond
	} else if o.Linger < 0 {
		o.Linger = 0
	}
	if o.MaxInflightOps == 0 {
		o.MaxInflightOps = 100000
	}
	if o.OpDeadline == 0 {
		o.OpDeadline = 60 * time.Second
	}
	if o.ReconnectBackoff == 0 {
		o.ReconnectBackoff = 100 * time.Millisecond
	}
	if o.MaxReconnectBackoff == 0 {
		o.MaxReconnectBackoff = 2 * time.Second
	}
	switch {
	case o.MaxOpsPerMessage < 1:
		return nil, fmt.Errorf("batcher: MaxOpsPerMessage must be >= 1 (got %d)", o.MaxOpsPerMessage)
	case o.MaxMessageBytes < 1024 || o.MaxMessageBytes > 4<<20-1024:
		return nil, fmt.Errorf("batcher: MaxMessageBytes must be in [1024, 4 MiB - 1024] (got %d)", o.MaxMessageBytes)
	case o.MaxInflightOps < 1:
		return nil, fmt.Errorf("batcher: MaxInflightOps must be >= 1 (got %d)", o.MaxInflightOps)
	case o.OpDeadline < 0:
		return nil, fmt.Errorf("batcher: OpDeadline must be > 0 (got %v)", o.OpDeadline)
	case o.ReconnectBackoff < 0 || o.MaxReconnectBackoff < o.ReconnectBackoff:
		return nil, fmt.Errorf("batcher: ReconnectBackoff must be > 0 and <= MaxReconnectBackoff")
	}
	dial := append([]grpc.DialOption{grpc.WithInsecure()}, o.DialOptions...)
	conn, err := grpc.Dial(o.Target, dial...)
	if err != nil {
		return nil, fmt.Errorf("batcher: dial %q: %w", o.Target, err)
	}
	c := &Client{
		opts:     o,
		conn:     conn,
		stub:     pb.NewWriteBatcherClient(conn),
		budget:   make(chan struct{}, o.MaxInflightOps),
		nextID:   1,
		ops:      make(map[uint64]*pending),
		wake:     make(chan struct{}, 1),
		progress: make(chan struct{}),
	}
	c.stopCtx, c.stopAll = context.WithCancel(context.Background())
	c.done.Add(2)
	go c.run()
	go c.reap()
	return c, nil
}

// Item is a DynamoDB item (or key) as attribute name -> value.
type Item map[string]*pb.AttributeValue

// S, N, B, Bool and Null build attribute values of DynamoDB's types.
func S(v string) *pb.AttributeValue { return &pb.AttributeValue{Value: &pb.AttributeValue_S{S: v}} }
func N(v string) *pb.AttributeValue { return &pb.AttributeValue{Value: &pb.AttributeValue_N{N: v}} }
func B(v []byte) *pb.AttributeValue { return &pb.AttributeValue{Value: &pb.AttributeValue_B{B: v}} }
func Bool(v bool) *pb.AttributeValue {
	return &pb.AttributeValue{Value: &pb.AttributeValue_BoolValue{BoolValue: v}}
}
func Null() *pb.AttributeValue {
	return &pb.AttributeValue{Value: &pb.AttributeValue_NullValue{NullValue: true}}
}

// Put writes item to table; the result arrives on the returned channel.
func (c *Client) Put(ctx context.Context, table string, item Item) <-chan Result {
	ch := make(chan Result, 1)
	c.PutFunc(ctx, table, item, func(r Result) { ch <- r })
	return ch
}

// Delete deletes the item with key from table; the result arrives on the
// returned channel.
func (c *Client) Delete(ctx context.Context, table string, key Item) <-chan Result {
	ch := make(chan Result, 1)
	c.DeleteFunc(ctx, table, key, func(r Result) { ch <- r })
	return ch
}

// PutFunc is Put with a callback, called exactly once.
func (c *Client) PutFunc(ctx context.Context, table string, item Item, cb func(Result)) {
	c.submit(ctx, &pb.WriteOp{Table: table, Op: &pb.WriteOp_Put{Put: &pb.Item{Attributes: item}}}, cb)
}

// DeleteFunc is Delete with a callback, called exactly once.
func (c *Client) DeleteFunc(ctx context.Context, table string, key Item, cb func(Result)) {
	c.submit(ctx, &pb.WriteOp{Table: table, Op: &pb.WriteOp_DeleteKey{DeleteKey: &pb.Item{Attributes: key}}}, cb)
}

func (c *Client) submit(ctx context.Context, op *pb.WriteOp, cb func(Result)) {
	fail := func(err error) {
		c.mu.Lock()
		c.stats.Submitted++
		c.stats.Resolved++
		c.stats.ClientErrors++
		c.mu.Unlock()
		cb(Result{Err: err})
	}
	if c.isClosed() {
		fail(status.Error(codes.FailedPrecondition, "batcher: client is closed"))
		return
	}
	select { // bounded in-flight ops: wait for room
	case c.budget <- struct{}{}:
	default:
		select {
		case c.budget <- struct{}{}:
		case <-ctx.Done():
			fail(status.FromContextError(ctx.Err()).Err())
			return
		case <-c.stopCtx.Done():
			fail(status.Error(codes.FailedPrecondition, "batcher: client is closed"))
			return
		}
	}
	if err := checkUTF8(op); err != nil {
		// proto3 strings must be UTF-8: such an op could never be sent, and
		// would break the stream for every op packed with it.
		<-c.budget
		fail(status.Error(codes.InvalidArgument, "batcher: "+err.Error()))
		return
	}
	now := time.Now()
	bytes := proto.Size(op) + opOverheadBytes
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.budget
		fail(status.Error(codes.FailedPrecondition, "batcher: client is closed"))
		return
	}
	id := c.nextID
	c.nextID++
	op.Id = id
	c.ops[id] = &pending{op: op, bytes: bytes, enqueued: now, deadline: now.Add(c.opts.OpDeadline), cb: cb}
	c.order = append(c.order, id)
	c.sendQ = append(c.sendQ, id)
	c.queuedB += bytes
	c.stats.Submitted++
	c.mu.Unlock()
	c.signal()
}

// checkUTF8 names the first string of op that is not valid UTF-8.
func checkUTF8(op *pb.WriteOp) error {
	if !utf8.ValidString(op.Table) {
		return fmt.Errorf("WriteOp.table: not valid UTF-8")
	}
	item := op.GetPut()
	if item == nil {
		item = op.GetDeleteKey()
	}
	return checkAttrs("item", item.GetAttributes())
}

func checkAttrs(path string, attrs map[string]*pb.AttributeValue) error {
	for name, v := range attrs {
		if !utf8.ValidString(name) {
			return fmt.Errorf("%s: attribute name %q is not valid UTF-8", path, name)
		}
		if err := checkValue(path+"."+name, v); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(path string, v *pb.AttributeValue) error {
	bad := func(s string) bool { return !utf8.ValidString(s) }
	switch x := v.GetValue().(type) {
	case *pb.AttributeValue_S:
		if bad(x.S) {
			return fmt.Errorf("%s (S): not valid UTF-8", path)
		}
	case *pb.AttributeValue_N:
		if bad(x.N) {
			return fmt.Errorf("%s (N): not valid UTF-8", path)
		}
	case *pb.AttributeValue_Ss:
		for _, s := range x.Ss.GetValues() {
			if bad(s) {
				return fmt.Errorf("%s (SS): a member is not valid UTF-8", path)
			}
		}
	case *pb.AttributeValue_Ns:
		for _, s := range x.Ns.GetValues() {
			if bad(s) {
				return fmt.Errorf("%s (NS): a member is not valid UTF-8", path)
			}
		}
	case *pb.AttributeValue_M:
		return checkAttrs(path, x.M.GetFields())
	case *pb.AttributeValue_L:
		for i, e := range x.L.GetValues() {
			if err := checkValue(fmt.Sprintf("%s[%d]", path, i), e); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *Client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// notifyLocked wakes Flush waiters.
func (c *Client) notifyLocked() {
	close(c.progress)
	c.progress = make(chan struct{})
}

// resolveLocked takes op id out of the pending set; the caller runs the
// returned callback outside the lock.
func (c *Client) resolveLocked(id uint64, r Result) func() {
	p, ok := c.ops[id]
	if !ok {
		return nil // already resolved (expired, or a duplicate result)
	}
	delete(c.ops, id)
	c.stats.Resolved++
	if r.Err != nil {
		c.stats.ClientErrors++
	} else {
		switch r.Outcome {
		case pb.Outcome_WRITTEN:
			c.stats.Written++
		case pb.Outcome_COALESCED:
			c.stats.Coalesced++
		case pb.Outcome_FAILED:
			c.stats.Failed++
		case pb.Outcome_REJECTED:
			c.stats.Rejected++
		}
	}
	return func() {
		<-c.budget
		p.cb(r)
	}
}

// oldestLocked drops resolved ids from the front of order and returns the
// oldest unresolved op's id (0 when none).
func (c *Client) oldestLocked() uint64 {
	i := 0
	for i < len(c.order) {
		if _, ok := c.ops[c.order[i]]; ok {
			break
		}
		i++
	}
	c.order = c.order[i:]
	if len(c.order) == 0 {
		return 0
	}
	return c.order[0]
}

func run(fns []func()) {
	for _, f := range fns {
		f()
	}
}

// run owns the stream: opens it when there are ops, sends, and after a break
// re-queues every unresolved op in submission order on a new stream.
func (c *Client) run() {
	defer c.done.Done()
	backoff := c.opts.ReconnectBackoff
	first := true
	for {
		c.mu.Lock()
		for len(c.ops) == 0 && !c.stopping { // idle client: no stream
			c.mu.Unlock()
			select {
			case <-c.wake:
			case <-c.stopCtx.Done():
			}
			c.mu.Lock()
		}
		if c.stopping {
			c.mu.Unlock()
			return
		}
		c.gen++
		gen := c.gen
		c.sendQ = c.sendQ[:0]
		c.queuedB = 0
		for _, id := range c.order {
			if p, ok := c.ops[id]; ok {
				c.sendQ = append(c.sendQ, id)
				c.queuedB += p.bytes
				if p.sentGen != 0 {
					c.stats.OpsResent++
				}
			}
		}
		if !first {
			c.stats.Reconnects++
		}
		first = false
		c.mu.Unlock()

		progressed, err := c.serve(gen)

		c.mu.Lock()
		c.healthy = false
		if err != nil {
			c.lastErr = err
		}
		var fns []func()
		if permanent(err) {
			// The sidecar refused what this stream carried (e.g. a message it
			// could not parse): re-sending would only repeat that, so the ops
			// it carried fail with the stream's status.
			for id, p := range c.ops {
				if p.sentGen == gen {
					fns = append(fns, c.resolveLocked(id, Result{Err: err}))
				}
			}
			c.notifyLocked()
		}
		stopping := c.stopping
		c.mu.Unlock()
		run(fns)
		if stopping {
			return
		}
		if progressed {
			backoff = c.opts.ReconnectBackoff
		}
		select {
		case <-time.After(backoff):
		case <-c.stopCtx.Done():
		}
		backoff *= 2
		if backoff > c.opts.MaxReconnectBackoff {
			backoff = c.opts.MaxReconnectBackoff
		}
	}
}

// permanent reports stream ends that re-sending the same ops cannot fix.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.Unimplemented, codes.PermissionDenied,
		codes.Unauthenticated, codes.FailedPrecondition, codes.OutOfRange:
		return true
	}
	return false
}

// serve runs one stream until it breaks or the client stops; returns whether
// it delivered results and the stream's final status (nil for OK).
func (c *Client) serve(gen uint64) (bool, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.stub.Write(ctx)
	if err != nil {
		return false, err
	}
	readerDone := make(chan struct{})
	var readErr error
	progressed := false
	go func() {
		defer close(readerDone)
		for {
			resp, err := stream.Recv()
			if err != nil {
				if err != io.EOF {
					readErr = err
				}
				return
			}
			var fns []func()
			c.mu.Lock()
			progressed = true
			c.healthy = true
			for _, r := range resp.Results {
				if f := c.resolveLocked(r.Id, Result{Outcome: r.Outcome, ErrorCode: r.ErrorCode,
					Message: r.Message, Attempts: r.Attempts}); f != nil {
					fns = append(fns, f)
				}
			}
			c.oldestLocked()
			c.notifyLocked()
			c.mu.Unlock()
			run(fns)
		}
	}()

	graceful := c.send(stream, gen, readerDone)
	if graceful {
		stream.CloseSend()
		select {
		case <-readerDone:
		case <-time.After(halfCloseGrace):
		}
	}
	cancel()
	<-readerDone
	c.mu.Lock()
	defer c.mu.Unlock()
	return progressed, readErr
}

// send packs queued ops into messages until the stream breaks (false) or the
// client stops (true when it stops gracefully).
func (c *Client) send(stream pb.WriteBatcher_WriteClient, gen uint64, readerDone <-chan struct{}) bool {
	var timer *time.Timer
	for {
		c.mu.Lock()
		if c.stopping {
			g := c.graceful
			c.mu.Unlock()
			return g
		}
		for len(c.sendQ) > 0 {
			if _, ok := c.ops[c.sendQ[0]]; ok {
				break
			}
			c.sendQ = c.sendQ[1:] // resolved (expired) while queued
		}
		var wait time.Duration = -1
		if len(c.sendQ) > 0 {
			front := c.sendQ[0]
			wait = time.Until(c.ops[front].enqueued.Add(c.opts.Linger))
			if len(c.sendQ) >= c.opts.MaxOpsPerMessage || c.queuedB >= c.opts.MaxMessageBytes ||
				c.flushUpto >= front || wait <= 0 {
				wait = 0
			}
		}
		if wait != 0 {
			c.mu.Unlock()
			var tc <-chan time.Time
			if wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				tc = timer.C
			}
			select {
			case <-c.wake:
			case <-tc:
			case <-readerDone:
				return false
			case <-c.stopCtx.Done():
			}
			if timer != nil && !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			continue
		}
		req := &pb.WriteRequest{Ops: make([]*pb.WriteOp, 0, min(len(c.sendQ), c.opts.MaxOpsPerMessage))}
		bytes := 0
		for len(c.sendQ) > 0 && len(req.Ops) < c.opts.MaxOpsPerMessage {
			p, ok := c.ops[c.sendQ[0]]
			if !ok {
				c.sendQ = c.sendQ[1:]
				continue
			}
			if len(req.Ops) > 0 && bytes+p.bytes > c.opts.MaxMessageBytes {
				break
			}
			bytes += p.bytes
			c.queuedB -= p.bytes
			p.sentGen = gen
			req.Ops = append(req.Ops, p.op)
			c.sendQ = c.sendQ[1:]
		}
		c.mu.Unlock()
		if len(req.Ops) == 0 {
			continue
		}
		// Blocks while gRPC flow control holds the stream: the sidecar's
		// backpressure reaches Put through the in-flight budget.
		if err := stream.Send(req); err != nil {
			return false
		}
		c.mu.Lock()
		c.healthy = true
		c.stats.MessagesSent++
		c.stats.OpsSent += uint64(len(req.Ops))
		c.notifyLocked()
		c.mu.Unlock()
	}
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}

// reap resolves ops that had no result within OpDeadline.
func (c *Client) reap() {
	defer c.done.Done()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-c.stopCtx.Done():
			return
		}
		now := time.Now()
		var fns []func()
		c.mu.Lock()
		for _, id := range c.order { // submission order is deadline order
			p, ok := c.ops[id]
			if !ok {
				continue
			}
			if p.deadline.After(now) {
				break
			}
			var err error
			if c.healthy || c.lastErr == nil {
				err = status.Error(codes.DeadlineExceeded, "batcher: no result from the sidecar within OpDeadline")
			} else {
				err = status.Errorf(codes.Unavailable, "batcher: sidecar unreachable until OpDeadline: %v", c.lastErr)
			}
			fns = append(fns, c.resolveLocked(id, Result{Err: err}))
		}
		if len(fns) > 0 {
			c.oldestLocked()
			c.notifyLocked()
		}
		c.mu.Unlock()
		run(fns)
	}
}

// Flush sends what the client holds now without lingering, asks the sidecar
// to send its buffers, and waits until every op submitted before the call is
// resolved, or ctx ends.
func (c *Client) Flush(ctx context.Context) error {
	c.mu.Lock()
	upto := c.nextID - 1
	if upto > c.flushUpto {
		c.flushUpto = upto
	}
	c.mu.Unlock()
	c.signal()
	// Wait until sent, so the sidecar's Flush covers them.
	if err := c.waitFor(ctx, func() bool {
		for _, id := range c.sendQ {
			if _, ok := c.ops[id]; ok {
				return id > upto
			}
		}
		return true
	}); err != nil {
		return err
	}
	if _, err := c.stub.Flush(ctx, &pb.FlushRequest{}); err != nil && ctx.Err() != nil {
		return err
	}
	// A failed Flush RPC only costs the sidecar's linger; results still come.
	return c.waitFor(ctx, func() bool {
		oldest := c.oldestLocked()
		return oldest == 0 || oldest > upto
	})
}

func (c *Client) waitFor(ctx context.Context, cond func() bool) error {
	for {
		c.mu.Lock()
		ok := cond()
		ch := c.progress
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// Close refuses new ops (FailedPrecondition), flushes until ctx ends, then
// stops; ops still unresolved then get Canceled. Returns the flush error.
// Safe to call more than once.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	err := c.Flush(ctx)
	c.mu.Lock()
	c.stopping = true
	c.graceful = err == nil
	c.mu.Unlock()
	c.stopAll()
	c.signal()
	c.done.Wait()
	var fns []func()
	c.mu.Lock()
	for _, id := range c.order {
		if _, ok := c.ops[id]; ok {
			fns = append(fns, c.resolveLocked(id, Result{Err: status.Error(codes.Canceled,
				"batcher: client closed before the sidecar answered")}))
		}
	}
	c.order = nil
	c.sendQ = nil
	c.notifyLocked()
	c.mu.Unlock()
	run(fns)
	c.conn.Close()
	return err
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Inflight = uint64(len(c.ops))
	return s
}

// Conn is the client's connection (e.g. for health checks).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }
