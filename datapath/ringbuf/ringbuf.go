// Package ringbuf hides a BPF ring buffer behind a two-method interface so
// that everything that decodes kernel records can be tested without root:
// tests hand the decoder a Fake, production code a Reader on a real map.
package ringbuf

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	cilium "github.com/cilium/ebpf/ringbuf"
)

// ErrClosed is returned by Read once the reader is closed.
var ErrClosed = os.ErrClosed

// ErrFlushed is returned by Read once every record waiting at a Flush has
// been read.
var ErrFlushed = cilium.ErrFlushed

// RecordReader yields raw records, one per Read. The returned slice is only
// valid until the next Read: callers copy what they keep. Close unblocks a
// pending Read, which then returns an error wrapping ErrClosed.
type RecordReader interface {
	Read() ([]byte, error)
	Close() error
}

// Reader reads records from a BPF_MAP_TYPE_RINGBUF map. It reuses one
// record buffer, so a steady stream of events allocates nothing.
type Reader struct {
	rd  *cilium.Reader
	rec cilium.Record
}

// NewReader opens a reader on a ring buffer map.
func NewReader(m *ebpf.Map) (*Reader, error) {
	rd, err := cilium.NewReader(m)
	if err != nil {
		return nil, fmt.Errorf("open ring buffer: %w", err)
	}
	return &Reader{rd: rd}, nil
}

// Read blocks until a record is available or the reader is closed.
func (r *Reader) Read() ([]byte, error) {
	if err := r.rd.ReadInto(&r.rec); err != nil {
		if errors.Is(err, cilium.ErrClosed) {
			return nil, fmt.Errorf("read ring buffer: %w", ErrClosed)
		}
		return nil, fmt.Errorf("read ring buffer: %w", err)
	}
	return r.rec.RawSample, nil
}

// Flush makes a blocked Read return what waits in the buffer now, then
// ErrFlushed, without waiting for the kernel to wake it.
func (r *Reader) Flush() error { return r.rd.Flush() }

// SetDeadline makes a later Read return an error wrapping
// os.ErrDeadlineExceeded once t passes and the buffer is empty; tests use it
// to drain without blocking. The zero time removes the deadline. It waits
// for a blocked Read to return (the reader's mutex), so call it from the
// reading goroutine; use Flush or Close to wake a Read from another one.
func (r *Reader) SetDeadline(t time.Time) { r.rd.SetDeadline(t) }

// Close releases the ring buffer mapping; it is safe to call twice.
func (r *Reader) Close() error {
	if err := r.rd.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("close ring buffer: %w", err)
	}
	return nil
}

// Fake is an in-memory RecordReader for tests: it returns the queued records
// in order, then blocks until Close.
type Fake struct {
	mu      sync.Mutex
	records [][]byte
	closed  chan struct{}
	once    sync.Once
}

// NewFake returns a Fake that yields records in order.
func NewFake(records ...[]byte) *Fake {
	return &Fake{records: records, closed: make(chan struct{})}
}

// Read returns the next queued record, or blocks until Close.
func (f *Fake) Read() ([]byte, error) {
	f.mu.Lock()
	if len(f.records) > 0 {
		rec := f.records[0]
		f.records = f.records[1:]
		f.mu.Unlock()
		return rec, nil
	}
	f.mu.Unlock()
	<-f.closed
	return nil, fmt.Errorf("read fake ring buffer: %w", ErrClosed)
}

// Drained reports whether every queued record has been read.
func (f *Fake) Drained() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.records) == 0
}

// Close unblocks Read.
func (f *Fake) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}
