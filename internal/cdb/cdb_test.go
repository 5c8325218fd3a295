package cdb

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

func build(t testing.TB, pairs ...string) []byte {
	w := NewWriter()
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := w.Add([]byte(pairs[i]), []byte(pairs[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	b, err := w.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHashMatchesDJB(t *testing.T) {
	// Values computed by hand from h = ((h << 5) + h) ^ c, h0 = 5381.
	if got := Hash(nil); got != 5381 {
		t.Errorf("Hash(\"\") = %d, want 5381", got)
	}
	if got := Hash([]byte("a")); got != (5381*33)^'a' {
		t.Errorf("Hash(\"a\") = %d, want %d", got, (5381*33)^'a')
	}
}

func TestRoundTrip(t *testing.T) {
	w := NewWriter()
	want := map[string]string{}
	for i := 0; i < 1000; i++ {
		k, v := fmt.Sprintf("key-%d", i), fmt.Sprintf("value %d", i*i)
		want[k] = v
		w.Add([]byte(k), []byte(v))
	}
	w.Add([]byte("key-1"), []byte("shadowed"))
	b, err := w.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(b)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		got, ok, err := r.Get([]byte(k))
		if err != nil || !ok || string(got) != v {
			t.Fatalf("Get(%q) = %q, %v, %v; want %q", k, got, ok, err, v)
		}
	}
	if _, ok, _ := r.Get([]byte("missing")); ok {
		t.Error("Get(missing) found a record")
	}
	n := 0
	if err := r.ForEach(func(k, v []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 1001 {
		t.Errorf("ForEach saw %d records, want 1001", n)
	}
}

func TestEmptyDatabase(t *testing.T) {
	b := build(t)
	if len(b) != headerSize {
		t.Fatalf("empty database is %d bytes, want %d", len(b), headerSize)
	}
	r, err := Open(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := r.Get([]byte("x")); ok || err != nil {
		t.Errorf("Get on empty database = %v, %v", ok, err)
	}
}

func TestTruncatedIsAnError(t *testing.T) {
	b := build(t, "alpha", "one", "beta", "two")
	for n := 0; n < len(b); n++ {
		r, err := Open(b[:n])
		if err != nil {
			continue
		}
		// The header survived; every lookup must fail cleanly or miss.
		r.Get([]byte("alpha"))
		r.ForEach(func(k, v []byte) error { return nil })
	}
	if _, err := Open(b[:100]); err == nil || !bytes.Contains([]byte(err.Error()), []byte("truncated")) {
		t.Errorf("Open(100 bytes) = %v, want a truncation error", err)
	}
}

func FuzzOpen(f *testing.F) {
	f.Add(build(f, "k", "v"))
	f.Add(build(f))
	f.Add(build(f, "treeshift-format", "3", "name", "boot"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Open(b)
		if err != nil {
			return
		}
		// Unverified data may make lookups fail, never panic.
		r.Get([]byte("k"))
		r.Get([]byte("treeshift-format"))
		r.ForEach(func(k, v []byte) error { r.Get(k); return nil })
		if r.Verify() != nil {
			return
		}
		// Verified data finds every key listed, with the data of one of the
		// records holding it.
		values := map[string][][]byte{}
		r.ForEach(func(k, v []byte) error {
			values[string(k)] = append(values[string(k)], v)
			return nil
		})
		for k, vs := range values {
			got, ok, err := r.Get([]byte(k))
			if err != nil || !ok || !slices.ContainsFunc(vs, func(v []byte) bool { return bytes.Equal(v, got) }) {
				t.Fatalf("verified database: Get(%q) = %q, %v, %v; want one of %q", k, got, ok, err, vs)
			}
		}
	})
}
