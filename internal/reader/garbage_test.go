package reader

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMegabyteWithoutTerminatorOverPTY(t *testing.T) {
	for _, framing := range []string{"line", "stx-etx"} {
		t.Run(framing, func(t *testing.T) {
			sc := newScanner(t)
			cfg := testConfig(sc.path)
			cfg.Framing = framing
			h := startReader(t, cfg, Options{})
			h.waitConnected(t)

			start, end := "", "\n"
			if framing == "stx-etx" {
				start, end = "\x02", "\x03"
			}
			// 1 MB with no terminator; then the terminator, and a scan.
			sc.write(t, start+strings.Repeat("7", 1<<20)+end)
			sc.write(t, start+"2021001,张三,"+testID+","+end)
			want := []byte{0x15, 0x0d, 0x07}
			if got := sc.readAck(t, len(want)); !bytes.Equal(got, want) {
				t.Fatalf("acks = % x, want % x", got, want)
			}
			rjs := h.store.Rejections()
			if len(rjs) != 1 || rjs[0].Reason != "frame longer than max_frame (4096 bytes)" || len(rjs[0].Raw) != 4096 {
				t.Fatalf("got %d rejections, want one of 4096 bytes for max_frame", len(rjs))
			}
			if bytes.ContainsAny(rjs[0].Raw, "0123456789") {
				t.Error("the cut frame's digits were stored unmasked")
			}
			if recs := h.store.Records(); len(recs) != 1 || recs[0].Xgh != "2021001" {
				t.Errorf("records = %+v", recs)
			}
		})
	}
}

// noise is deterministic binary garbage with terminators in it.
func noise(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

func TestBinaryNoiseOverPTY(t *testing.T) {
	for _, tt := range []struct{ framing, decoder string }{
		{"line", "delimited"},
		{"stx-etx", "json"},
		{"idle", "card"},
	} {
		t.Run(tt.framing+"/"+tt.decoder, func(t *testing.T) {
			sc := newScanner(t)
			cfg := testConfig(sc.path)
			cfg.Framing, cfg.Decoder = tt.framing, tt.decoder
			cfg.AckFail = "" // nobody drains hundreds of ack_fail bytes
			cfg.IdleGap.Duration = 30 * time.Millisecond
			if tt.decoder == "card" {
				cfg.Roster = filepath.Join(t.TempDir(), "roster.csv")
				writeRoster(t, cfg.Roster, "12ab34,2021001,张三,"+testID+"\n", time.Now())
			}
			h := startReader(t, cfg, Options{})
			h.waitConnected(t)

			for i := range 16 {
				sc.write(t, string(noise(4096, uint64(i))))
			}
			marker := map[string]string{
				"delimited": "\n2021001,张三," + testID + ",\n",
				"json":      "\x02{\"xgh\":\"2021001\",\"name\":\"张三\",\"idCard\":\"" + testID + "\"}\x03",
				"card":      "12ab34",
			}[tt.decoder]
			if tt.framing == "idle" {
				time.Sleep(3 * cfg.IdleGap.Duration) // let the noise end its frame
			}
			sc.write(t, marker)
			waitFor(t, "the scan after the noise", func() bool {
				recs := h.store.Records()
				return len(recs) > 0 && recs[len(recs)-1].Xgh == "2021001"
			})
			st := h.r.Stats()
			if !h.r.Connected() || st.Read != st.Rejected+st.Stored || st.Rejected == 0 {
				t.Errorf("connected %v, stats %+v", h.r.Connected(), st)
			}
		})
	}
}

func TestMonitorOverPTY(t *testing.T) {
	sc := newScanner(t)
	cfg := testConfig(sc.path)
	logs := &syncBuffer{}
	var (
		mu     sync.Mutex
		events []Event
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	connected := make(chan string, 1)
	go func() {
		done <- Monitor(ctx, cfg, MonitorOptions{
			Logger:       slog.New(slog.NewTextHandler(logs, nil)),
			DedupeWindow: time.Minute,
			Connected:    func(path string) { connected <- path },
		}, func(ev Event) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		})
	}()
	select {
	case p := <-connected:
		if p != sc.path {
			t.Errorf("connected to %s, want %s", p, sc.path)
		}
	case err := <-done:
		t.Fatalf("Monitor: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("Monitor did not open the port")
	}
	sc.write(t, "2021001,张三,"+plainID+",\n2021001,张三,"+plainID+",\nbad\n2021002,李四,,\n")
	waitFor(t, "four events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) >= 4
	})
	sc.expectSilence(t, 50*time.Millisecond) // no ack bytes
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Monitor returned %v after cancel, want nil", err)
	}
	checkNoLeak(t)

	want := []Event{
		{Raw: []byte("*******,张三,******************,"), Fields: Fields{Xgh: "2021001", Name: "张三", IDCard: "330***********123X", UserType: "9"}},
		{Raw: []byte("*******,张三,******************,"), Fields: Fields{Xgh: "2021001", Name: "张三", IDCard: "330***********123X", UserType: "9"}, Repeat: true},
		{Raw: []byte("bad"), Reason: "delimited: got 1 columns, want 4"},
		{Raw: []byte("*******,李四,,"), Reason: "idCard: is empty"}, // the agent's verdict
	}
	for i, w := range want {
		got := events[i]
		if !bytes.Equal(got.Raw, w.Raw) || got.Fields != w.Fields || got.Reason != w.Reason || got.Repeat != w.Repeat || got.Time.IsZero() {
			t.Errorf("event %d = %+v, want %+v", i, got, w)
		}
	}
}

func TestMonitorNotesBytesWithoutFrame(t *testing.T) {
	defer func(d time.Duration) { stallAfter = d }(stallAfter)
	stallAfter = 50 * time.Millisecond
	sc := newScanner(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notes := make(chan string, 4)
	connected := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Monitor(ctx, testConfig(sc.path), MonitorOptions{Connected: func(p string) { connected <- p }},
			func(ev Event) { notes <- ev.Note })
	}()
	<-connected
	sc.write(t, "2021001,张三,"+testID+",") // no CR or LF
	select {
	case n := <-notes:
		if !strings.Contains(n, `34 bytes received but no frame ended: framing = "line" waits for CR or LF`) {
			t.Errorf("note = %q", n)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no note about bytes that never end a frame")
	}
	cancel()
	<-done
}

func TestMonitorPortMissing(t *testing.T) {
	err := Monitor(context.Background(), testConfig(filepath.Join(t.TempDir(), "ttyNOPE")), MonitorOptions{}, func(Event) {})
	if err == nil || !strings.Contains(err.Error(), "ttyNOPE") {
		t.Errorf("Monitor on a missing port: %v, want an error naming it", err)
	}
}
