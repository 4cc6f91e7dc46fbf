package config

// ServerConfig is where Gatehouse listens, keeps its files and says it is.
type ServerConfig struct {
	HTTPAddr   string `env:"HTTP_ADDR" default:":8080" doc:"Listen address of the public API (host:port)."`
	AdminAddr  string `env:"ADMIN_ADDR" default:"127.0.0.1:9090" doc:"Listen address of the admin listener serving /metrics and health checks; keep it private."`
	AdminPprof bool   `env:"ADMIN_PPROF" default:"false" doc:"Serve Go's profiler (/debug/pprof/) on the admin listener, for diagnosing CPU and memory use."`
	DataDir    string `env:"DATA_DIR" default:"./data" doc:"Directory for the embedded SQLite database, the development encryption key and other local files."`
	Issuer     string `env:"ISSUER" default:"http://localhost:8080" doc:"Public base URL of this server; https required in production unless localhost."`
}

func (s ServerConfig) validate(env string) []string {
	var r report
	if err := checkListenAddr(s.HTTPAddr); err != nil {
		r.bad("HTTP_ADDR", "%v", err)
	}
	if err := checkListenAddr(s.AdminAddr); err != nil {
		r.bad("ADMIN_ADDR", "%v", err)
	}
	if s.DataDir == "" {
		r.bad("DATA_DIR", "must not be empty")
	}
	if err := checkIssuer(s.Issuer); err != nil {
		r.bad("ISSUER", "%v", err)
	}
	if env == EnvProduction && plainHTTP(s.Issuer) {
		r.bad("ISSUER", "must use https:// in production (got %q)", s.Issuer)
	}
	return r
}
