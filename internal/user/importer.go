package user

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// NewUser is an account created by an operator (CLI or admin API).
type NewUser struct {
	Email    string
	Password string
	Name     string
	Admin    bool
	Verified bool
}

// Create makes an account directly, without a verification email: for
// bootstrap and administration. The password must pass the policy.
func (s *Service) Create(ctx context.Context, in NewUser, m httpapi.Meta) (store.User, error) {
	var errs fieldErrors
	email := checkEmail(&errs, "email", in.Email)
	name := cleanText(&errs, "name", in.Name, maxNameLength)
	s.checkPassword(ctx, &errs, "password", in.Password, store.User{Email: email, Name: name})
	if err := errs.err(); err != nil {
		return store.User{}, err
	}
	hash, err := s.Hasher.Hash(ctx, in.Password)
	if err != nil {
		return store.User{}, err
	}
	u := store.User{Email: email, EmailNormalized: NormalizeEmail(email), PasswordHash: hash, Name: name, Status: store.UserActive, IsAdmin: in.Admin}
	if in.Verified {
		u.EmailVerifiedAt = s.now()
	}
	var out store.User
	err = s.Store.InTx(ctx, func(tx Tx) error {
		var err error
		if out, err = tx.CreateUser(ctx, u); err != nil {
			return err
		}
		if err := s.audit(ctx, tx, m, out.ID, "user.created", map[string]any{"email": out.Email, "admin": in.Admin, "verified": in.Verified}); err != nil {
			return err
		}
		return tx.Publish(ctx, event.UserCreated{User: out, Via: event.CreatedByAdmin, Meta: m})
	})
	if errors.Is(err, store.ErrConflict) {
		return store.User{}, ErrEmailTaken
	}
	return out, err
}

// ImportLine is one line of a JSONL import file.
type ImportLine struct {
	Email         string         `json:"email"`
	PasswordHash  string         `json:"password_hash"`
	EmailVerified bool           `json:"email_verified"`
	Name          string         `json:"name"`
	Metadata      map[string]any `json:"metadata"`
}

// ImportError names a rejected line.
type ImportError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// ImportResult summarises an import.
type ImportResult struct {
	Imported int           `json:"imported"`
	Failed   []ImportError `json:"failed"`
}

// maxImportLine bounds one JSONL line.
const maxImportLine = 1 << 20

// Import reads one JSON object a line and creates each account with its
// existing password hash (Argon2id, bcrypt or Django PBKDF2 — upgraded to
// Argon2id at the next login). A bad line is reported with its number and
// nothing of it is written; the other lines still are. Blank lines are
// skipped.
func (s *Service) Import(ctx context.Context, r io.Reader, m httpapi.Meta) (ImportResult, error) {
	res := ImportResult{Failed: []ImportError{}}
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return res, nil
		}
		if errors.Is(err, errLineTooLong) {
			res.Failed = append(res.Failed, ImportError{Line: n, Error: "line longer than 1 MiB"})
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return res, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if lerr := s.importLine(ctx, line, m); lerr != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			res.Failed = append(res.Failed, ImportError{Line: n, Error: lerr.Error()})
			continue
		}
		res.Imported++
	}
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its newline; an overlong line is
// consumed and reported as errLineTooLong.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxImportLine {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			return nil, errLineTooLong
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), err
	}
}

func (s *Service) importLine(ctx context.Context, raw []byte, m httpapi.Meta) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var in ImportLine
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	var errs fieldErrors
	email := checkEmail(&errs, "email", in.Email)
	name := cleanText(&errs, "name", in.Name, maxNameLength)
	if len(errs) > 0 {
		return fmt.Errorf("%s: %s", errs[0].Field, errs[0].Message)
	}
	if in.PasswordHash == "" {
		return errors.New("password_hash: required")
	}
	if _, err := s.Hasher.Identify(in.PasswordHash); err != nil {
		return fmt.Errorf("password_hash: %v", err)
	}
	if in.Metadata != nil {
		b, _ := json.Marshal(in.Metadata)
		if len(b) > maxMetadataBytes {
			return errors.New("metadata: larger than 16 KiB")
		}
	}
	u := store.User{
		Email: email, EmailNormalized: NormalizeEmail(email), PasswordHash: in.PasswordHash,
		Name: name, Metadata: in.Metadata, Status: store.UserActive,
	}
	if in.EmailVerified {
		u.EmailVerifiedAt = s.now()
	}
	err := s.Store.InTx(ctx, func(tx Tx) error {
		created, err := tx.CreateUser(ctx, u)
		if err != nil {
			return err
		}
		if err := s.audit(ctx, tx, m, created.ID, "user.imported", map[string]any{"email": created.Email}); err != nil {
			return err
		}
		return tx.Publish(ctx, event.UserCreated{User: created, Via: event.CreatedByImport, Meta: m})
	})
	if errors.Is(err, store.ErrConflict) {
		return errors.New("email: an account with this address already exists")
	}
	return err
}
