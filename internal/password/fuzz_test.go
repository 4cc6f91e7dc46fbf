package password

import (
	"context"
	"errors"
	"testing"
)

// FuzzVerify feeds arbitrary stored hashes and passwords to Verify. It must
// never panic, must agree with Identify on which hashes are acceptable,
// and must return only the documented errors. Limits are tiny so that each
// input costs microseconds: parameters beyond them are refused before any
// computation.
func FuzzVerify(f *testing.F) {
	h := NewHasher(testParams, 2, WithLimits(Limits{
		MaxArgon2Memory:     256,
		MaxArgon2Time:       2,
		MaxArgon2Threads:    2,
		MaxArgon2Cost:       512,
		MaxBcryptCost:       4,
		MaxPBKDF2Iterations: 1000,
	}))
	own, err := h.Hash(context.Background(), "password")
	if err != nil {
		f.Fatal(err)
	}
	seeds := []string{
		own,
		"argon2" + own,
		referenceVectors[0].encoded,
		referenceVectors[3].encoded,
		"$2a$04$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
		"$2b$04$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
		"$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
		"pbkdf2_sha256$1000$seasalt$JgZryXe2Ga8ysg6XbzkLpTdyPQrHqsinbL9BnnhgX4A=",
		"pbkdf2_sha1$1000$seasalt$ljleU4wBmTtz/MoG5YTwxpM0d7I=",
		"$argon2id$v=19$m=4294967295,t=4294967295,p=255$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2d$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=8,t=1,p=1,keyid=AAAA,data=BBBB$c29tZXNhbHQ$AAAA",
		"$argon2i$v=19$m=7,t=1,p=1$$",
		"$2a$",
		"pbkdf2_sha256$$$",
		"",
		"$",
	}
	for _, s := range seeds {
		f.Add(s, "password")
	}
	f.Fuzz(func(t *testing.T, encoded, password string) {
		ok, rehash, err := h.Verify(context.Background(), password, encoded)
		format, idErr := h.Identify(encoded)
		if (err == nil) != (idErr == nil) {
			t.Fatalf("Verify error %v but Identify error %v", err, idErr)
		}
		if err != nil {
			if !errors.Is(err, ErrUnknownFormat) && !errors.Is(err, ErrMalformedHash) && !errors.Is(err, ErrParamsOutOfRange) {
				t.Fatalf("undocumented error %v", err)
			}
			if ok || rehash || format != "" {
				t.Fatalf("error %v with ok=%v rehash=%v format=%q", err, ok, rehash, format)
			}
			return
		}
		if format == "" {
			t.Fatal("accepted hash with no format")
		}
		if rehash && !ok {
			t.Fatal("needsRehash without a match")
		}
		if ok && format != FormatArgon2id && !rehash {
			t.Fatalf("legacy %s match without needsRehash", format)
		}
	})
}
