package config

// PasswordConfig is the password policy and how passwords are hashed.
type PasswordConfig struct {
	MinLength       int      `env:"PASSWORD_MIN_LENGTH" default:"12" doc:"Minimum password length in characters (NIST SP 800-63B asks 15 where the password is the only factor)."`
	MaxLength       int      `env:"PASSWORD_MAX_LENGTH" default:"256" doc:"Maximum password length in characters (at least 64)."`
	MinScore        int      `env:"PASSWORD_MIN_SCORE" default:"3" doc:"Minimum zxcvbn strength score, 0–4 (0 turns the check off)."`
	Require         []string `env:"PASSWORD_REQUIRE" doc:"Composition rules, off by default: comma-separated upper, lower, digit, symbol."`
	BreachedFile    string   `env:"BREACHED_PASSWORDS_FILE" doc:"File of SHA-1 hashes of breached passwords (Have I Been Pwned format, one uppercase hex hash a line, optional :count, sorted)."`
	HIBPEnabled     bool     `env:"HIBP_ENABLED" default:"false" doc:"Also check new passwords against the Have I Been Pwned range API (k-anonymity: only 5 hex characters of the SHA-1 leave the server)."`
	HIBPURL         string   `env:"HIBP_URL" default:"https://api.pwnedpasswords.com" doc:"Base URL of the Have I Been Pwned range API."`
	Argon2MemoryKiB int      `env:"ARGON2_MEMORY_KIB" default:"19456" doc:"Argon2id memory per hash in KiB (OWASP: 19456)."`
	Argon2Time      int      `env:"ARGON2_TIME" default:"2" doc:"Argon2id iterations (OWASP: 2)."`
	Argon2Threads   int      `env:"ARGON2_THREADS" default:"1" doc:"Argon2id parallelism (OWASP: 1)."`
	HashConcurrency int      `env:"PASSWORD_HASH_CONCURRENCY" default:"0" doc:"Password hashes computed at once; caps memory at this times ARGON2_MEMORY_KIB. 0: the number of CPUs."`
}

func (p PasswordConfig) validate(string) []string {
	r := p.policyProblems()
	r.inRange(8192, 4<<20, namedInt{"ARGON2_MEMORY_KIB", p.Argon2MemoryKiB})
	r.inRange(1, 20, namedInt{"ARGON2_TIME", p.Argon2Time})
	r.inRange(1, 64, namedInt{"ARGON2_THREADS", p.Argon2Threads})
	r.inRange(0, 1024, namedInt{"PASSWORD_HASH_CONCURRENCY", p.HashConcurrency})
	return r
}

// policyProblems checks the rules new passwords must meet.
func (p PasswordConfig) policyProblems() report {
	var r report
	if p.MinLength < 8 || p.MinLength > 128 {
		r.bad("PASSWORD_MIN_LENGTH", "%d is out of range (8–128; NIST SP 800-63B requires at least 8)", p.MinLength)
	}
	if p.MaxLength < 64 || p.MaxLength > 4096 || p.MaxLength < p.MinLength {
		r.bad("PASSWORD_MAX_LENGTH", "%d is out of range (64–4096, and at least GATEHOUSE_PASSWORD_MIN_LENGTH)", p.MaxLength)
	}
	r.inRange(0, 4, namedInt{"PASSWORD_MIN_SCORE", p.MinScore})
	for _, rule := range p.Require {
		switch rule {
		case "upper", "lower", "digit", "symbol":
		default:
			r.bad("PASSWORD_REQUIRE", "%q is not a rule (want upper, lower, digit or symbol)", rule)
		}
	}
	if p.HIBPEnabled {
		if err := checkIssuer(p.HIBPURL); err != nil {
			r.bad("HIBP_URL", "%v", err)
		}
	}
	return r
}
