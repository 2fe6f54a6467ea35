package upload

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"scanagent/internal/queue"
)

// streak follows refusals with errorFields: HoldAfter records in a row
// refused for the same fields are a configuration fault, not bad records.
type streak struct {
	mu      sync.Mutex
	key     string   // the fields of the current run of refusals
	ids     []uint64 // the records of that run, moved to dead
	held    bool     // uploading holds
	heldKey string   // what holds it: the fields, or "endpoint"
	// run: the records refused in a row that started a hold for fields.
	// The hold probes with a record after them (see rewindFrom): each may
	// be bad on its own, and refused the same way for ever.
	run []uint64
	// cleared: records of a run whose hold ended by another answer; each
	// is then judged alone (dead when refused), never a new run.
	cleared map[uint64]struct{}
}

// FieldKeys names the configuration key most likely at fault when the
// platform refuses a field for every record.
var FieldKeys = map[string]string{
	"appId":    "[platform] app_id",
	"idCard":   "[platform] app_id (the encryption key) or [crypto] mode / encoding / iv",
	"termName": "the reader's term_name",
	"termSn":   "the reader's term_sn",
	"scanDate": "[upload] date_format / timezone (and the terminal's clock)",
	"userType": "the reader's user_type or decoder fields",
	"xgh":      "the reader's decoder fields",
	"name":     "the reader's decoder fields",
}

// fieldFix says which keys to check for the refused fields.
func fieldFix(fields []string) string {
	var keys []string
	for _, f := range fields {
		if k, ok := FieldKeys[f]; ok {
			keys = append(keys, f+" → "+k)
		}
	}
	if len(keys) == 0 {
		return "the platform refuses the fields " + strings.Join(fields, ", ") + " of every record: compare the configuration with what the platform's administrators registered; restart the agent after the fix"
	}
	return "check " + strings.Join(keys, "; ") + ", as registered on the platform; restart the agent after the fix (held records are then sent)"
}

// refused handles a record refused with errorFields. A record refused alone
// is dead; HoldAfter in a row with the same fields hold the queue: the run's
// records go back to pending (under their IDs, keeping their order) and
// this one stays pending. It reports whether the record stays pending.
func (u *Uploader) refused(probe bool, r queue.Record, fields []string, reason string, log *slog.Logger) bool {
	key := strings.Join(fields, ",")
	s := &u.streak
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cleared[r.ID]; ok && !s.held {
		delete(s.cleared, r.ID)
		u.dead.Add(1)
		u.kill(r, reason, log)
		return false
	}
	if s.held && s.heldKey == key {
		u.gate.hold(probe)
		u.note(r, "held: "+reason, u.gate.nextTry(), log)
		return true
	}
	if s.held { // refused otherwise: the hold's cause is gone
		u.unholdLocked()
	}
	if key != s.key {
		s.key, s.ids = key, nil
	}
	if len(s.ids)+1 < u.opts.HoldAfter {
		s.ids = append(s.ids, r.ID)
		u.dead.Add(1)
		u.kill(r, reason, log)
		return false
	}
	why := fmt.Sprintf("%d records in a row refused for the fields %s (%s)", len(s.ids)+1, key, reason)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, err := u.q.Revive(ctx, "held: "+why, s.ids...)
	cancel()
	if err != nil {
		log.Error("could not move the refused records back to pending; retry them with `scanagent queue retry --all-dead` after the fix", "err", err.Error())
	}
	s.run = append(s.ids, r.ID)
	s.ids = nil
	s.held, s.heldKey = true, key
	u.gate.hold(probe)
	u.plat.hold(why, fieldFix(fields))
	u.note(r, "held: "+reason, u.gate.nextTry(), log)
	return true
}

// holdSystemic holds the queue for an answer that says the endpoint is
// wrong (404, 405).
func (u *Uploader) holdSystemic(probe bool, reason, fix string) {
	s := &u.streak
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key, s.ids, s.run = "", nil, nil
	s.held, s.heldKey = true, "endpoint"
	u.gate.hold(probe)
	u.plat.hold("the scan endpoint answers "+reason, fix)
}

// resetStreak: a record refused without fields breaks a run.
func (u *Uploader) resetStreak() {
	s := &u.streak
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key, s.ids = "", nil
	if s.held {
		u.unholdLocked()
	}
}

// resume: a record was delivered; a hold ends, a run of refusals too.
func (u *Uploader) resume() {
	u.resetStreak()
}

// rewindFrom is where the dispatcher starts again after a record was
// given back: past the refused run while a hold for fields lasts (so
// the probe is a record outside it), else the oldest (0).
func (u *Uploader) rewindFrom() uint64 {
	s := &u.streak
	s.mu.Lock()
	defer s.mu.Unlock()
	var last uint64
	if s.held {
		for _, id := range s.run {
			last = max(last, id)
		}
	}
	return last
}

func (u *Uploader) unholdLocked() {
	s := &u.streak
	if len(s.run) > 0 && s.cleared == nil {
		s.cleared = map[uint64]struct{}{}
	}
	for _, id := range s.run {
		s.cleared[id] = struct{}{}
	}
	s.held, s.heldKey, s.run = false, "", nil
	u.again() // the run's records are behind the dispatcher's cursor
	u.plat.unhold()
	u.gate.success()
	u.log.Info("uploads resumed: the platform no longer refuses every record the same way")
}
