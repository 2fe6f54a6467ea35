package alerts

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxAnswer bounds what is read of a msgsend answer.
const maxAnswer = 64 << 10

// send posts one message: access_token in the query string, content, xgh,
// messageType, messageTo and appId as a form body. A BadToken answer
// invalidates the token and the message is tried once more with the next
// one; any outcome but Transient is returned with a nil error.
func (e *Engine) send(ctx context.Context, m Message) (Result, error) {
	for try := 0; ; try++ {
		tok, err := e.tokens.Token(ctx)
		if err != nil {
			return Result{}, fmt.Errorf("%w: no access token: %s", errNotSent, e.opts.Redactor.Error(err))
		}
		res, err := e.post(ctx, tok, m)
		if err != nil {
			return Result{}, err
		}
		switch res.Outcome {
		case BadToken:
			e.tokens.Invalidate(tok)
			if try == 0 {
				continue
			}
			return Result{}, fmt.Errorf("%w: %s", errNotSent, res.Reason)
		case Transient:
			return Result{}, fmt.Errorf("%w: %s", errNotSent, res.Reason)
		}
		return res, nil
	}
}

func (e *Engine) post(ctx context.Context, tok string, m Message) (Result, error) {
	form := url.Values{}
	form.Set("content", m.Text)
	form.Set("xgh", m.To)
	form.Set("messageType", e.opts.MessageType)
	if e.opts.MessageTo != "" {
		form.Set("messageTo", e.opts.MessageTo)
	}
	form.Set("appId", e.opts.AppID)
	u := e.opts.URL + "?" + url.Values{"access_token": {tok}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return Result{}, fmt.Errorf("%w: %s", errNotSent, e.opts.Redactor.Error(err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	req.Header.Set("Accept", "application/json")
	resp, err := e.opts.Client.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %s", errNotSent, e.opts.Redactor.Error(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	res := Classify(resp.StatusCode, body)
	res.Reason = e.opts.Redactor.String(res.Reason)
	return res, nil
}
