// Package store is apiwarden's embedded persistence: one bbolt file in the
// data directory holding the inventory state and time-ordered event logs,
// so an agent restart keeps what it learned.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// File is the database file name inside the data directory.
const File = "apiwarden.db"

// LockTimeout is how long Open waits for the file lock. bbolt holds an
// exclusive flock for the life of the handle, so a second agent on the same
// data dir would otherwise wait forever.
const LockTimeout = 2 * time.Second

// MaxKindLen bounds event kind names (they are bucket names).
const MaxKindLen = 64

// MaxEventsPerQuery bounds one Events answer; a limit <= 0 or above it is
// clamped to it.
const MaxEventsPerQuery = 10000

// Errors callers can test with errors.Is.
var (
	ErrLocked      = errors.New("data dir locked by another process")
	ErrNotWritable = errors.New("data dir not writable")
	ErrBadKind     = errors.New("invalid event kind")
)

var (
	bucketInventory = []byte("inventory")
	bucketEvents    = []byte("events")
	bucketState     = []byte("state")
	keyState        = []byte("state")
)

// Store is an open database. Its methods are safe for concurrent use.
type Store struct {
	db  *bolt.DB
	log *slog.Logger
}

// Open opens or creates the database in dir, creating dir if needed.
func Open(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "store")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotWritable, dir, err)
	}
	// Probe writability up front: bbolt would otherwise report a bare
	// permission error on the file, or succeed read-only later.
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotWritable, dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())

	path := filepath.Join(dir, File)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: LockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (is another agent running?)", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketInventory, bucketEvents, bucketState} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("create buckets: %w", err)
	}
	log.Info("store opened", "path", path)
	return &Store{db: db, log: log}, nil
}

// Close closes the database and releases the lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}

// SaveInventory replaces the persisted inventory state.
func (s *Store) SaveInventory(state []byte) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInventory).Put(keyState, state)
	})
	if err != nil {
		return fmt.Errorf("save inventory: %w", err)
	}
	return nil
}

// LoadInventory returns the persisted inventory state, or nil, nil when
// none was saved.
func (s *Store) LoadInventory() ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketInventory).Get(keyState); v != nil {
			// bbolt values live only as long as the transaction.
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load inventory: %w", err)
	}
	return out, nil
}

// SaveState replaces a named piece of agent state (e.g. the persistent
// blocklist).
func (s *Store) SaveState(name string, data []byte) error {
	if err := checkKind(name); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketState).Put([]byte(name), data)
	})
	if err != nil {
		return fmt.Errorf("save %s: %w", name, err)
	}
	return nil
}

// LoadState returns a named piece of state, or nil, nil when none was saved.
func (s *Store) LoadState(name string) ([]byte, error) {
	if err := checkKind(name); err != nil {
		return nil, err
	}
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketState).Get([]byte(name)); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	return out, nil
}

func checkKind(kind string) error {
	if kind == "" || len(kind) > MaxKindLen {
		return fmt.Errorf("%w: %q", ErrBadKind, kind)
	}
	return nil
}

// timeKey encodes ts so that byte order is time order. Times before 1970
// clamp to zero.
func timeKey(ts time.Time) uint64 {
	n := ts.UnixNano()
	if n < 0 {
		return 0
	}
	return uint64(n)
}

// AppendEvent stores one event of a kind. Keys are the timestamp followed
// by a per-kind sequence number, so equal timestamps never overwrite.
func (s *Store) AppendEvent(kind string, ts time.Time, data []byte) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error { return appendEvent(tx, kind, ts, data) })
	if err != nil {
		return fmt.Errorf("append %s event: %w", kind, err)
	}
	return nil
}

func appendEvent(tx *bolt.Tx, kind string, ts time.Time, data []byte) error {
	b, err := tx.Bucket(bucketEvents).CreateBucketIfNotExists([]byte(kind))
	if err != nil {
		return err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	var key [16]byte
	binary.BigEndian.PutUint64(key[:8], timeKey(ts))
	binary.BigEndian.PutUint64(key[8:], seq)
	return b.Put(key[:], data)
}

// Events returns up to limit events of a kind at or after since, oldest
// first.
func (s *Store) Events(kind string, since time.Time, limit int) ([][]byte, error) {
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxEventsPerQuery {
		limit = MaxEventsPerQuery
	}
	var out [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents).Bucket([]byte(kind))
		if b == nil {
			return nil
		}
		var start [8]byte
		binary.BigEndian.PutUint64(start[:], timeKey(since))
		c := b.Cursor()
		for k, v := c.Seek(start[:]); k != nil && len(out) < limit; k, v = c.Next() {
			out = append(out, append([]byte(nil), v...))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s events: %w", kind, err)
	}
	return out, nil
}

// Prune deletes the events of a kind older than olderThan and returns how
// many it deleted.
func (s *Store) Prune(kind string, olderThan time.Time) (int, error) {
	if err := checkKind(kind); err != nil {
		return 0, err
	}
	var end [8]byte
	binary.BigEndian.PutUint64(end[:], timeKey(olderThan))
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents).Bucket([]byte(kind))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		// Deleting through the cursor keeps its position valid.
		for k, _ := c.First(); k != nil && string(k[:8]) < string(end[:]); k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune %s events: %w", kind, err)
	}
	return n, nil
}

// Trim keeps the newest keep events of a kind and deletes the rest,
// returning how many it deleted: a count bound for callers whose event
// rate is not bounded by time.
func (s *Store) Trim(kind string, keep int) (int, error) {
	if err := checkKind(kind); err != nil {
		return 0, err
	}
	if keep < 0 {
		keep = 0
	}
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents).Bucket([]byte(kind))
		if b == nil {
			return nil
		}
		excess := b.Stats().KeyN - keep
		c := b.Cursor()
		for k, _ := c.First(); k != nil && n < excess; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("trim %s events: %w", kind, err)
	}
	return n, nil
}

// EventKinds lists the kinds that have an event log.
func (s *Store) EventKinds() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEachBucket(func(k []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list event kinds: %w", err)
	}
	return out, nil
}
