package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
)

func TestHealthz(t *testing.T) {
	h := Health{OK: true, Pending: 3, Platform: "reachable", Readers: map[string]bool{"gate": true}}
	s, err := New("127.0.0.1:0", func() Health { return h })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	for _, tc := range []struct {
		ok   bool
		want int
	}{{true, 200}, {false, 503}} {
		h.OK = tc.ok
		resp, err := http.Get("http://" + s.Addr() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		var got Health
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != tc.want || got.Pending != 3 || !got.Readers["gate"] {
			t.Errorf("ok=%v: got %d %+v, want %d", tc.ok, resp.StatusCode, got, tc.want)
		}
	}
}
