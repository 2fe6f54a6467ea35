package reader

// What makes a decoded frame a scan the platform will accept: the reader's
// encoding, user_type, user_types and id_check, and the record's field
// rules (package field).

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"

	"scanagent/internal/field"
)

// encoding values; "" is read as utf-8.
const (
	encodingUTF8    = "utf-8"
	encodingGBK     = "gbk"
	encodingGB18030 = "gb18030"
)

// charsetOf returns the decoder of a reader's encoding, nil for UTF-8 (the
// frame is used as it is).
func charsetOf(name string) (encoding.Encoding, error) {
	switch name {
	case "", encodingUTF8:
		return nil, nil
	case encodingGBK:
		return simplifiedchinese.GBK, nil
	case encodingGB18030:
		return simplifiedchinese.GB18030, nil
	}
	return nil, fmt.Errorf("encoding = %q: want %q, %q or %q", name, encodingUTF8, encodingGBK, encodingGB18030)
}

// transcode turns a frame in cs into UTF-8. Bytes that are not valid in cs
// make the frame invalid: the decoder would replace them with U+FFFD, which
// would then be sent as part of a name.
func transcode(cs encoding.Encoding, data []byte) ([]byte, bool) {
	out, err := cs.NewDecoder().Bytes(data)
	if err != nil || bytes.ContainsRune(out, utf8.RuneError) || !utf8.Valid(out) {
		return nil, false
	}
	return out, true
}

// decode turns a frame's bytes into the scan the reader would store:
// transcoded from the reader's encoding, decoded, its userType filled in
// (user_type) and mapped (user_types), and every field checked by the
// record's rules (and id_check). A non-empty reason means the frame is
// rejected and answered with ack_fail; it names the field and the rule and
// never quotes the frame. Run and Monitor both call it, so monitor shows
// the agent's verdict.
func (r *Reader) decode(data []byte) (scan, string) {
	if r.rereadRoster.Swap(false) {
		if cd, ok := r.decoder.(*cardDecoder); ok {
			cd.checked = cd.now()
			cd.reload(cd.stat())
		}
	}
	if r.charset != nil {
		utf, ok := transcode(r.charset, data)
		if !ok {
			return scan{}, fmt.Sprintf("frame is not valid %s (encoding = %q)", strings.ToUpper(r.cfg.Encoding), r.cfg.Encoding)
		}
		data = utf
	}
	s, reason := decodeFrame(r.decoder, data)
	if reason != "" {
		return scan{}, reason
	}
	return r.check(s)
}

// check fills in and maps userType and applies the field rules to a decoded
// scan. It returns the scan as it would be stored, or every problem found
// as "field: rule", joined by "; ".
func (r *Reader) check(s scan) (scan, string) {
	var probs []string
	add := func(name string, err error) {
		if err != nil {
			probs = append(probs, name+": "+err.Error())
		}
	}
	add(fieldXgh, field.Check(s.Xgh, field.MaxXgh))
	add(fieldName, field.Check(s.Name, field.MaxName))
	if err := field.Check(s.IDCard, field.MaxIDCard); err != nil {
		add(fieldIDCard, err)
	} else if r.idCheckCN18 {
		add(fieldIDCard, field.CN18(s.IDCard))
	}
	switch {
	case s.UserType == "" && r.cfg.UserType != "":
		// The reader's user_type is the label sent as it is.
		s.UserType = r.cfg.UserType
		add(fieldUserType, field.Check(s.UserType, field.MaxUserType))
	case s.UserType == "":
		probs = append(probs, fieldUserType+": is empty (set the reader's user_type for a scanner that sends none)")
	case len(r.cfg.UserTypes) > 0:
		label, ok := r.cfg.UserTypes[s.UserType]
		if !ok {
			probs = append(probs, fieldUserType+": code not in user_types")
			break
		}
		s.UserType = label
		add(fieldUserType, field.Check(s.UserType, field.MaxUserType))
	default:
		add(fieldUserType, field.Check(s.UserType, field.MaxUserType))
	}
	if len(probs) > 0 {
		return scan{}, strings.Join(probs, "; ")
	}
	return s, ""
}

// notUTF8 is the reason for a frame that is not valid UTF-8: it names the
// fields that hold the invalid bytes when the decoder found them.
func notUTF8(s scan) string {
	var names []string
	for _, f := range []struct{ name, v string }{
		{fieldXgh, s.Xgh}, {fieldName, s.Name}, {fieldIDCard, s.IDCard}, {fieldUserType, s.UserType}, {fieldCard, s.Card},
	} {
		// The json decoder has already replaced invalid bytes with U+FFFD.
		if !utf8.ValidString(f.v) || strings.ContainsRune(f.v, utf8.RuneError) {
			names = append(names, f.name)
		}
	}
	const hint = ` (a scanner that sends GBK needs encoding = "gbk")`
	if len(names) == 0 {
		return "frame is not valid UTF-8" + hint
	}
	return strings.Join(names, ", ") + ": not valid UTF-8" + hint
}
