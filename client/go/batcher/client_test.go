package batcher

// Stream-end handling against an in-process fake WriteBatcher on loopback:
// the sidecar cannot be made to end a stream with INVALID_ARGUMENT or to break
// after answering exactly half a message on demand, so these cases are driven
// by a fake; the real sidecar cases are in tests/integration.

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/dynamo-batcher/dynamo-batcher/gen/go/dynamobatcher/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fake runs handle for each Write stream (numbered from 0).
type fake struct {
	pb.UnimplementedWriteBatcherServer
	mu      sync.Mutex
	streams int
	handle  func(n int, s pb.WriteBatcher_WriteServer) error
}

func (f *fake) Write(s pb.WriteBatcher_WriteServer) error {
	f.mu.Lock()
	n := f.streams
	f.streams++
	f.mu.Unlock()
	return f.handle(n, s)
}

func (f *fake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams
}

func start(t *testing.T, f *fake) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterWriteBatcherServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func written(ids ...uint64) *pb.WriteResponse {
	r := &pb.WriteResponse{}
	for _, id := range ids {
		r.Results = append(r.Results, &pb.WriteResult{Id: id, Outcome: pb.Outcome_WRITTEN})
	}
	return r
}

func newClient(t *testing.T, target string) *Client {
	t.Helper()
	c, err := New(Options{Target: target, Linger: 20 * time.Millisecond, OpDeadline: 5 * time.Second,
		ReconnectBackoff: 10 * time.Millisecond, MaxReconnectBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

func TestInvalidArgumentStreamEndFailsTheOpsInsteadOfResendingThem(t *testing.T) {
	f := &fake{handle: func(n int, s pb.WriteBatcher_WriteServer) error {
		if _, err := s.Recv(); err != nil {
			return err
		}
		return status.Error(codes.InvalidArgument, "WriteRequest: message does not parse")
	}}
	c := newClient(t, start(t, f))
	var chans []<-chan Result
	for i := 0; i < 3; i++ {
		chans = append(chans, c.Put(context.Background(), "t", Item{"pk": S("k")}))
	}
	for i, ch := range chans {
		select {
		case r := <-ch:
			if status.Code(r.Err) != codes.InvalidArgument || !strings.Contains(r.Err.Error(), "does not parse") {
				t.Errorf("op %d: got %v, want the stream's INVALID_ARGUMENT", i, r)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("op %d: no result (re-sent in a loop instead of failing?)", i)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := f.count(); n != 1 {
		t.Errorf("%d streams opened, want 1: the refused ops must not be sent again", n)
	}
}

func TestBrokenStreamResendsOnlyUnansweredOpsInOrder(t *testing.T) {
	var mu sync.Mutex
	var second []uint64
	f := &fake{handle: func(n int, s pb.WriteBatcher_WriteServer) error {
		if n == 0 {
			req, err := s.Recv()
			if err != nil {
				return err
			}
			// Answer the first half, then break.
			var half []uint64
			for _, op := range req.Ops[:len(req.Ops)/2] {
				half = append(half, op.Id)
			}
			if err := s.Send(written(half...)); err != nil {
				return err
			}
			return status.Error(codes.Unavailable, "connection reset")
		}
		for {
			req, err := s.Recv()
			if err != nil {
				return nil
			}
			var ids []uint64
			mu.Lock()
			for _, op := range req.Ops {
				second = append(second, op.Id)
				ids = append(ids, op.Id)
			}
			mu.Unlock()
			if err := s.Send(written(ids...)); err != nil {
				return err
			}
		}
	}}
	c := newClient(t, start(t, f))
	var chans []<-chan Result
	for i := 0; i < 10; i++ {
		chans = append(chans, c.Put(context.Background(), "t", Item{"pk": S("k"), "v": N("1")}))
	}
	for i, ch := range chans {
		select {
		case r := <-ch:
			if !r.OK() {
				t.Errorf("op %d: %v", i, r)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("op %d: no result", i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []uint64{6, 7, 8, 9, 10}
	if len(second) != len(want) {
		t.Fatalf("second stream got ids %v, want %v", second, want)
	}
	for i := range want {
		if second[i] != want[i] {
			t.Fatalf("second stream got ids %v, want %v (in order)", second, want)
		}
	}
	if s := c.Stats(); s.OpsResent != 5 || s.Reconnects != 1 {
		t.Errorf("stats %+v: want 5 resent, 1 reconnect", s)
	}
}

func TestInvalidUTF8IsRefusedLocallyAndDoesNotPoisonTheStream(t *testing.T) {
	f := &fake{handle: func(n int, s pb.WriteBatcher_WriteServer) error {
		for {
			req, err := s.Recv()
			if err != nil {
				return nil
			}
			var ids []uint64
			for _, op := range req.Ops {
				ids = append(ids, op.Id)
			}
			if err := s.Send(written(ids...)); err != nil {
				return err
			}
		}
	}}
	c := newClient(t, start(t, f))
	bad := c.Put(context.Background(), "t", Item{"pk": S("k"), "m": {Value: &pb.AttributeValue_M{
		M: &pb.MapValue{Fields: map[string]*pb.AttributeValue{"x": S("\xff")}}}}})
	good := c.Put(context.Background(), "t", Item{"pk": S("k")})
	r := <-bad
	if status.Code(r.Err) != codes.InvalidArgument || !strings.Contains(r.Err.Error(), "item.m.x (S)") {
		t.Errorf("bad op: got %v, want INVALID_ARGUMENT naming item.m.x", r)
	}
	select {
	case r := <-good:
		if !r.OK() {
			t.Errorf("good op: %v", r)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("good op: no result")
	}
}
