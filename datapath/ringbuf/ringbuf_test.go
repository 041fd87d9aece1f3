package ringbuf

import (
	"errors"
	"testing"
	"time"
)

func TestFakeYieldsInOrderThenBlocksUntilClose(t *testing.T) {
	f := NewFake([]byte("a"), []byte("b"))
	for _, want := range []string{"a", "b"} {
		got, err := f.Read()
		if err != nil || string(got) != want {
			t.Fatalf("Read = %q, %v; want %q", got, err, want)
		}
	}
	if !f.Drained() {
		t.Fatal("not drained")
	}
	errc := make(chan error)
	go func() {
		_, err := f.Read()
		errc <- err
	}()
	select {
	case err := <-errc:
		t.Fatalf("Read returned %v before Close", err)
	case <-time.After(20 * time.Millisecond):
	}
	f.Close()
	f.Close() // idempotent
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}
