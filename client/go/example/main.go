// Command example streams puts and deletes to the dynamo-batcher sidecar
// through the Go client (package batcher) and checks every result.
//
// Usage:
//
//	example --target 127.0.0.1:50051 --table events
//
// Modes (--mode):
//
//	example   writes pk=go#0..go#N-1 (N = --items, "go" = --prefix) with value
//	          "v1", overwrites the first 5 with "v2" and deletes the last 5.
//	stress    --workers goroutines write --ops puts/deletes (1 in 10 a delete)
//	          over --keys shared keys, optionally paced at --rate ops/s; writes
//	          the expected final rows (key TAB value, last write per key in call
//	          order) to --expect-out.
//	outcomes  an op to an unknown table, an item without its key, and 10 puts
//	          to one key in one message: prints what came back.
//	bench     --ops puts over --keys keys with --ops-per-message (default 64),
//	          as fast as the sidecar takes them; prints ops/s.
//
// Exits 0 when every op is WRITTEN or COALESCED (outcomes: when each came
// back as expected), 1 otherwise, 3 when the sidecar is unreachable.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynamo-batcher/dynamo-batcher/client/go/batcher"
	pb "github.com/dynamo-batcher/dynamo-batcher/gen/go/dynamobatcher/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	target    = flag.String("target", "127.0.0.1:50051", "sidecar gRPC address")
	table     = flag.String("table", "events", "table name")
	keyAttr   = flag.String("key", "pk", "string partition key attribute")
	prefix    = flag.String("prefix", "go", "key prefix")
	items     = flag.Int("items", 100, "example: items to write")
	mode      = flag.String("mode", "example", "example | stress | outcomes | bench")
	workers   = flag.Int("workers", 8, "stress: goroutines")
	keys      = flag.Int("keys", 200, "stress/bench: distinct keys")
	ops       = flag.Int("ops", 4000, "stress/bench: ops in total")
	rate      = flag.Int("rate", 0, "stress: ops/s over all goroutines (0: unpaced)")
	seed      = flag.Int64("seed", 1, "stress: random seed")
	expectOut = flag.String("expect-out", "", "stress: file for the expected rows")
	perMsg    = flag.Int("ops-per-message", 256, "ops per WriteRequest (bench default 64)")
	deadline  = flag.Duration("op-deadline", 60*time.Second, "client op deadline")
	cpuProf   = flag.String("cpuprofile", "", "write a CPU profile (go tool pprof) to this file")
)

func main() {
	flag.Parse()
	if *mode == "bench" && !flagSet("ops-per-message") {
		*perMsg = 64
	}
	opts := batcher.Options{Target: *target, MaxOpsPerMessage: *perMsg, OpDeadline: *deadline}
	if *mode == "outcomes" {
		opts.Linger = 50 * time.Millisecond // the 10 same-key puts share one message
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "go example: --cpuprofile:", err)
			os.Exit(1)
		}
	}
	c, err := batcher.New(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go example:", err)
		os.Exit(1)
	}
	var rc int
	switch *mode {
	case "example":
		rc = example(c)
	case "stress":
		rc = stress(c)
	case "outcomes":
		rc = outcomes(c)
	case "bench":
		rc = bench(c)
	default:
		fmt.Fprintf(os.Stderr, "go example: --mode %q: must be example, stress, outcomes or bench\n", *mode)
		rc = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Close(ctx)
	pprof.StopCPUProfile()
	os.Exit(rc)
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

type tally struct {
	mu                              sync.Mutex
	written, coalesced, unreachable int
	unexpected                      []string
}

func (t *tally) add(what string, r batcher.Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case r.Err == nil && r.Outcome == pb.Outcome_WRITTEN:
		t.written++
	case r.Err == nil && r.Outcome == pb.Outcome_COALESCED:
		t.coalesced++
	default:
		if status.Code(r.Err) == codes.Unavailable {
			t.unreachable++
		}
		t.unexpected = append(t.unexpected, what+": "+r.String())
	}
}

func (t *tally) exitCode(total int) int {
	for i, u := range t.unexpected {
		if i == 10 {
			fmt.Printf("  ... %d more\n", len(t.unexpected)-10)
			break
		}
		fmt.Println("  unexpected:", u)
	}
	switch {
	case len(t.unexpected) == 0:
		return 0
	case t.unreachable == total:
		return 3
	}
	return 1
}

func example(c *batcher.Client) int {
	ctx := context.Background()
	var t tally
	var chans []<-chan batcher.Result
	var names []string
	put := func(n int, v string) {
		k := fmt.Sprintf("%s#%d", *prefix, n)
		chans = append(chans, c.Put(ctx, *table, batcher.Item{*keyAttr: batcher.S(k),
			"value": batcher.S(v), "source": batcher.S("go"), "n": batcher.N(fmt.Sprint(n))}))
		names = append(names, "put "+k)
	}
	for n := 0; n < *items; n++ {
		put(n, "v1")
	}
	for n := 0; n < 5 && n < *items; n++ {
		put(n, "v2")
	}
	for n := *items - 5; n < *items; n++ {
		if n < 0 {
			continue
		}
		k := fmt.Sprintf("%s#%d", *prefix, n)
		chans = append(chans, c.Delete(ctx, *table, batcher.Item{*keyAttr: batcher.S(k)}))
		names = append(names, "delete "+k)
	}
	for i, ch := range chans {
		t.add(names[i], <-ch)
	}
	fmt.Printf("go example: %d ops, %d written, %d coalesced, %d unexpected\n",
		len(chans), t.written, t.coalesced, len(t.unexpected))
	return t.exitCode(len(chans))
}

func stress(c *batcher.Client) int {
	ctx := context.Background()
	var t tally
	var order sync.Mutex // makes call order = recorded order across goroutines
	last := map[string]string{}
	var wg, results sync.WaitGroup
	var pace <-chan time.Time
	if *rate > 0 {
		tick := time.NewTicker(time.Second / time.Duration(*rate))
		defer tick.Stop()
		pace = tick.C
	}
	for w := 0; w < *workers; w++ {
		n := *ops / *workers
		if w < *ops%*workers {
			n++
		}
		wg.Add(1)
		go func(w, n int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(*seed*1000 + int64(w)))
			for i := 0; i < n; i++ {
				if pace != nil {
					<-pace
				}
				k := fmt.Sprintf("%s#%d", *prefix, rnd.Intn(*keys))
				del := rnd.Intn(10) == 0
				v := fmt.Sprintf("w%d-%d", w, i)
				what := fmt.Sprintf("%s %s=%s", map[bool]string{true: "delete", false: "put"}[del], k, v)
				results.Add(1)
				cb := func(r batcher.Result) { t.add(what, r); results.Done() }
				order.Lock()
				if del {
					last[k] = ""
					c.DeleteFunc(ctx, *table, batcher.Item{*keyAttr: batcher.S(k)}, cb)
				} else {
					last[k] = v
					c.PutFunc(ctx, *table, batcher.Item{*keyAttr: batcher.S(k), "v": batcher.S(v)}, cb)
				}
				order.Unlock()
			}
		}(w, n)
	}
	wg.Wait()
	results.Wait()
	if *expectOut != "" {
		var lines []string
		for k, v := range last {
			if v != "" {
				lines = append(lines, k+"\t"+v+"\n")
			}
		}
		sort.Strings(lines)
		if err := os.WriteFile(*expectOut, []byte(strings.Join(lines, "")), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "go stress:", err)
			return 1
		}
	}
	s := c.Stats()
	fmt.Printf("go stress: %d ops, %d written, %d coalesced, %d unexpected, %d resent, %d reconnects\n",
		*ops, t.written, t.coalesced, len(t.unexpected), s.OpsResent, s.Reconnects)
	return t.exitCode(*ops)
}

func outcomes(c *batcher.Client) int {
	ctx := context.Background()
	unknown := c.Put(ctx, "no_such_table", batcher.Item{*keyAttr: batcher.S("x")})
	nokey := c.Put(ctx, *table, batcher.Item{"other": batcher.S("x")})
	var same []<-chan batcher.Result
	for i := 0; i < 10; i++ {
		same = append(same, c.Put(ctx, *table, batcher.Item{*keyAttr: batcher.S(*prefix + "#same"),
			"v": batcher.S(fmt.Sprintf("s%d", i))}))
	}
	ok := true
	u := <-unknown
	fmt.Printf("unknown table: %s %s\n", u.Outcome, u.ErrorCode)
	ok = ok && u.Err == nil && u.Outcome == pb.Outcome_REJECTED
	k := <-nokey
	fmt.Printf("missing key: %s %s\n", k.Outcome, k.ErrorCode)
	ok = ok && k.Err == nil && k.Outcome == pb.Outcome_REJECTED
	counts := map[string]int{}
	for i, ch := range same {
		r := <-ch
		counts[r.Outcome.String()]++
		want := pb.Outcome_COALESCED
		if i == len(same)-1 {
			want = pb.Outcome_WRITTEN
		}
		ok = ok && r.Err == nil && r.Outcome == want
	}
	fmt.Printf("same key: %d COALESCED, %d WRITTEN\n", counts["COALESCED"], counts["WRITTEN"])
	if !ok {
		return 1
	}
	return 0
}

func bench(c *batcher.Client) int {
	ctx := context.Background()
	var done, bad int64
	var wg sync.WaitGroup
	wg.Add(*ops)
	start := time.Now()
	for i := 0; i < *ops; i++ {
		k := fmt.Sprintf("%s#%d", *prefix, i%*keys)
		c.PutFunc(ctx, *table, batcher.Item{*keyAttr: batcher.S(k), "v": batcher.S(fmt.Sprintf("b%d", i))},
			func(r batcher.Result) {
				if !r.OK() {
					atomic.AddInt64(&bad, 1)
				}
				atomic.AddInt64(&done, 1)
				wg.Done()
			})
	}
	wg.Wait()
	el := time.Since(start)
	s := c.Stats()
	fmt.Printf("go bench: %d ops in %.2fs = %.0f ops/s at %d ops/message (%.1f ops/message sent), %d not ok\n",
		*ops, el.Seconds(), float64(*ops)/el.Seconds(), *perMsg, float64(s.OpsSent)/float64(s.MessagesSent), bad)
	if bad > 0 {
		return 1
	}
	return 0
}
