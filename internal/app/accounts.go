package app

import (
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/secret"
)

// newHasher builds the password hasher from the Argon2id settings.
func newHasher(cfg *config.Config) *password.Hasher {
	p := password.DefaultParams
	p.Memory = uint32(cfg.Argon2MemoryKiB)
	p.Time = uint32(cfg.Argon2Time)
	p.Threads = uint8(cfg.Argon2Threads)
	return password.NewHasher(p, cfg.PasswordHashConcurrency)
}

// newPolicy builds the password policy. The returned close releases the
// breached-password file.
func newPolicy(cfg *config.Config, log *slog.Logger) (password.Policy, func() error, error) {
	pol := password.DefaultPolicy()
	pol.MinLength, pol.MaxLength, pol.MinScore = cfg.PasswordMinLength, cfg.PasswordMaxLength, cfg.PasswordMinScore
	for _, r := range cfg.PasswordRequire {
		switch r {
		case "upper":
			pol.RequireUpper = true
		case "lower":
			pol.RequireLower = true
		case "digit":
			pol.RequireDigit = true
		case "symbol":
			pol.RequireSymbol = true
		}
	}
	closer := func() error { return nil }
	var checkers password.MultiChecker
	if cfg.BreachedPasswordsFile != "" {
		f, err := password.OpenBreachFile(cfg.BreachedPasswordsFile)
		if err != nil {
			return pol, closer, fmt.Errorf("GATEHOUSE_BREACHED_PASSWORDS_FILE: %w", err)
		}
		checkers = append(checkers, f)
		closer = f.Close
	}
	if cfg.HIBPEnabled {
		checkers = append(checkers, password.NewHIBPClient(cfg.HIBPURL, &http.Client{Timeout: 3 * time.Second}))
	}
	if len(checkers) > 0 {
		pol.Breached = checkers
	}
	if err := pol.Validate(); err != nil {
		return pol, closer, fmt.Errorf("password policy: %w", err)
	}
	if cfg.BreachedPasswordsFile == "" && !cfg.HIBPEnabled {
		log.Warn("breached-password screening is off; set GATEHOUSE_BREACHED_PASSWORDS_FILE or GATEHOUSE_HIBP_ENABLED")
	}
	return pol, closer, nil
}

// registerMail adds the email worker: SMTP when configured, else the
// outbox directory inside the data dir.
func registerMail(workers *river.Workers, cfg *config.Config, keys *secret.Keyring, log *slog.Logger) error {
	renderer, err := mail.NewRenderer(cfg.EmailTemplatesDir, mail.Brand{ProductName: cfg.ProductName, SupportEmail: cfg.SupportEmail})
	if err != nil {
		return fmt.Errorf("GATEHOUSE_EMAIL_TEMPLATES_DIR: %w", err)
	}
	sender, err := mail.NewSenderFromURL(cfg.SMTPURL, outboxDir(cfg), cfg.EmailFrom, log, nil)
	if err != nil {
		return fmt.Errorf("GATEHOUSE_SMTP_URL: %w", err)
	}
	if cfg.SMTPURL == "" {
		log.Info("no SMTP server configured; emails are written to the outbox directory", "dir", outboxDir(cfg))
	}
	w, err := mail.NewWorker(renderer, sender, keys, cfg.EmailFrom, log)
	if err != nil {
		return err
	}
	return mail.Register(workers, w)
}

func outboxDir(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "outbox") }
