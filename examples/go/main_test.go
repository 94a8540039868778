package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "kvstore/examples/go/kvpb"
)

// startKvd starts kvd ($KVD, default ../../build/server/kvd) on a free
// loopback port with its data in a temporary directory and returns the bound
// address; the cleanup stops it with SIGTERM (SIGKILL after 10 s).
func startKvd(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("KVD")
	if bin == "" {
		bin = "../../build/server/kvd"
	}
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	var log bytes.Buffer
	cmd := exec.Command(bin, "--name", "go-example", "--listen", "127.0.0.1:0",
		"--data-dir", filepath.Join(dir, "data"), "--ready-file", ready)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		select {
		case <-exited:
			t.Fatalf("kvd exited at start:\n%s", log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("kvd not ready after 20 s:\n%s", log.String())
	return ""
}

func dial(t *testing.T, endpoint string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestDemoAgainstLiveKvd(t *testing.T) {
	endpoint := startKvd(t)
	var out bytes.Buffer
	if err := runDemo(context.Background(), dial(t, endpoint), "go-demo/", &out); err != nil {
		t.Fatalf("%v\noutput so far:\n%s", err, out.String())
	}
	t.Logf("kv-example against kvd at %s:\n%s", endpoint, out.String())
	if n := strings.Count(out.String(), "\n"); n != 8 {
		t.Errorf("want 8 lines, got %d", n)
	}
}

func TestExactCodes(t *testing.T) {
	kv := pb.NewKVClient(dial(t, startKvd(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("never-written"), Value: []byte("v"),
		Precondition: &pb.Precondition{Condition: &pb.Precondition_ExpectedVersion{
			ExpectedVersion: &pb.Version{Hlc: 1, NodeId: 1}}}})
	if got := status.Code(err); got != codes.FailedPrecondition {
		t.Errorf("conditional put on a missing key: got %v (%v), want FailedPrecondition", got, err)
	}
	_, err = kv.Get(ctx, &pb.GetRequest{Key: bytes.Repeat([]byte("k"), defaultMaxKeyBytes+1)})
	if got := status.Code(err); got != codes.InvalidArgument || !strings.Contains(err.Error(), "4096") {
		t.Errorf("get of a key over the limit: got %v, want InvalidArgument naming 4096", err)
	}
	got, err := kv.Get(ctx, &pb.GetRequest{Key: []byte("never-written")})
	if err != nil || got.GetFound() {
		t.Errorf("the failed put wrote something: %v %v", got, err)
	}
}
