// Command kv-example is a small kvd client in Go: put, get, scan, delete and
// conditional puts, each step checked against what proto/kv.proto promises.
//
//	cd examples/go && go generate && go run . -endpoint 127.0.0.1:7071
//
// `go generate` builds the stubs into kvpb/ (see generate.sh); grpc-go,
// protobuf-go and both protoc plugins are pinned in go.mod. Every step prints
// one line; the exit code is 0 when every step did what kv.proto promises,
// 1 otherwise.
package main

//go:generate ./generate.sh

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "kvstore/examples/go/kvpb"
)

// defaultMaxKeyBytes is the node's default key limit (kvd --max-key-bytes).
const defaultMaxKeyBytes = 4096

func fmtVersion(v *pb.Version) string {
	return fmt.Sprintf("%d:%d", v.GetHlc(), v.GetNodeId())
}

// expectCode checks that err is a gRPC status with the given code.
func expectCode(err error, want codes.Code, what string) (*status.Status, error) {
	if err == nil {
		return nil, fmt.Errorf("%s: want %v, the call succeeded", what, want)
	}
	st, _ := status.FromError(err)
	if st.Code() != want {
		return nil, fmt.Errorf("%s: want %v, got %v: %s", what, want, st.Code(), st.Message())
	}
	return st, nil
}

// runDemo runs every step against the node behind conn, writing keys under
// prefix, and returns an error naming the first step that did not do what
// kv.proto says.
func runDemo(ctx context.Context, conn grpc.ClientConnInterface, prefix string, out io.Writer) error {
	kv := pb.NewKVClient(conn)
	key := []byte(prefix + "greeting")
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 5*time.Second) }

	c, cancel := call()
	defer cancel()
	put, err := kv.Put(c, &pb.PutRequest{Key: key, Value: []byte("hello")})
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	fmt.Fprintf(out, "put %s = hello -> version %s\n", key, fmtVersion(put.GetVersion()))

	got, err := kv.Get(c, &pb.GetRequest{Key: key})
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	if !got.GetFound() || string(got.GetValue()) != "hello" || !proto.Equal(got.GetVersion(), put.GetVersion()) {
		return fmt.Errorf("get: got %v", got)
	}
	fmt.Fprintf(out, "get %s -> %s (version %s)\n", key, got.GetValue(), fmtVersion(got.GetVersion()))

	// Conditional put at the version just read: succeeds.
	atVersion := &pb.Precondition{Condition: &pb.Precondition_ExpectedVersion{ExpectedVersion: got.GetVersion()}}
	cond, err := kv.Put(c, &pb.PutRequest{Key: key, Value: []byte("hello again"), Precondition: atVersion})
	if err != nil {
		return fmt.Errorf("conditional put: %w", err)
	}
	fmt.Fprintf(out, "put %s if version %s -> version %s\n", key, fmtVersion(got.GetVersion()), fmtVersion(cond.GetVersion()))

	// The same condition again: the version moved on, so FAILED_PRECONDITION.
	_, err = kv.Put(c, &pb.PutRequest{Key: key, Value: []byte("lost update"), Precondition: atVersion})
	st, err := expectCode(err, codes.FailedPrecondition, "stale conditional put")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "put %s if version %s (stale) -> %v: %s\n", key, fmtVersion(got.GetVersion()), st.Code(), st.Message())
	absent := &pb.Precondition{Condition: &pb.Precondition_MustNotExist{MustNotExist: true}}
	_, err = kv.Put(c, &pb.PutRequest{Key: key, Value: []byte("x"), Precondition: absent})
	if st, err = expectCode(err, codes.FailedPrecondition, "put if absent on a live key"); err != nil {
		return err
	}
	fmt.Fprintf(out, "put %s if absent -> %v: %s\n", key, st.Code(), st.Message())

	names := []string{"a", "b", "c"}
	for _, n := range names {
		if _, err := kv.Put(c, &pb.PutRequest{Key: []byte(prefix + "list/" + n), Value: []byte("value-" + n)}); err != nil {
			return fmt.Errorf("put list/%s: %w", n, err)
		}
	}
	stream, err := kv.Scan(c, &pb.ScanRequest{Prefix: []byte(prefix + "list/")})
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	var entries []string
	var keys [][]byte
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		for _, e := range chunk.GetEntries() {
			keys = append(keys, e.GetKey())
			entries = append(entries, fmt.Sprintf("%s=%s", e.GetKey(), e.GetValue()))
		}
	}
	if len(keys) != len(names) {
		return fmt.Errorf("scan: got %d entries: %v", len(keys), entries)
	}
	for i, n := range names {
		if !bytes.Equal(keys[i], []byte(prefix+"list/"+n)) {
			return fmt.Errorf("scan: got keys %v", entries)
		}
	}
	fmt.Fprintf(out, "scan prefix %slist/ -> %s\n", prefix, strings.Join(entries, ", "))

	del, err := kv.Delete(c, &pb.DeleteRequest{Key: key})
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	after, err := kv.Get(c, &pb.GetRequest{Key: key})
	if err != nil {
		return fmt.Errorf("get after delete: %w", err)
	}
	if after.GetFound() || !proto.Equal(after.GetVersion(), del.GetVersion()) {
		return fmt.Errorf("get after delete: got %v, want not found at the tombstone's version", after)
	}
	fmt.Fprintf(out, "delete %s -> version %s; get -> found=%v\n", key, fmtVersion(del.GetVersion()), after.GetFound())

	tooLong := bytes.Repeat([]byte("k"), defaultMaxKeyBytes+1)
	_, err = kv.Put(c, &pb.PutRequest{Key: tooLong, Value: []byte("v")})
	if st, err = expectCode(err, codes.InvalidArgument, "put of a key over the limit"); err != nil {
		return err
	}
	fmt.Fprintf(out, "put of a %d-byte key -> %v: %s\n", len(tooLong), st.Code(), st.Message())
	return nil
}

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:7070", "kvd host:port")
	flag.Parse()
	conn, err := grpc.NewClient(*endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAILED:", err)
		os.Exit(1)
	}
	defer conn.Close()
	if err := runDemo(context.Background(), conn, "go-demo/", os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "FAILED:", err)
		os.Exit(1)
	}
	fmt.Println("all steps ok")
}
