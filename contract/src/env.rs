//! Names of the environment variables that configure the shim.
//!
//! Where Bank-Vaults' `vault-env` has a name for a setting, Hush uses the same name, so
//! manifests written for it keep working. Settings of Hush's own start with `HUSH_`.
//! The webhook writes these variables from annotations; the shim reads them once, at start,
//! and removes them from the application's environment unless they are listed in
//! [`VAULT_ENV_PASSTHROUGH`].

/// Vault's address, e.g. `https://vault.vault.svc:8200`.
pub const VAULT_ADDR: &str = "VAULT_ADDR";
/// A Vault token to use as is (auth method `token`). Not revoked unless asked.
pub const VAULT_TOKEN: &str = "VAULT_TOKEN";
/// The role to log in as (`kubernetes`, `jwt`) or the AppRole role ID (`approle`).
pub const VAULT_ROLE: &str = "VAULT_ROLE";
/// `kubernetes` (default without a token), `jwt`, `token`, `approle`.
pub const VAULT_AUTH_METHOD: &str = "VAULT_AUTH_METHOD";
/// The auth method's mount path, e.g. `kubernetes` or `auth/jwt`.
pub const VAULT_PATH: &str = "VAULT_PATH";
/// Vault Enterprise / OpenBao namespace sent with every request.
pub const VAULT_NAMESPACE: &str = "VAULT_NAMESPACE";
/// PEM file with the CA certificates that sign Vault's server certificate.
pub const VAULT_CACERT: &str = "VAULT_CACERT";
/// `true` disables TLS verification (for tests; logged as a warning).
pub const VAULT_SKIP_VERIFY: &str = "VAULT_SKIP_VERIFY";
/// `true` leaves references to missing secrets unresolved, with a warning.
pub const VAULT_IGNORE_MISSING_SECRETS: &str = "VAULT_IGNORE_MISSING_SECRETS";
/// Comma-separated names of configuration variables to pass to the application.
pub const VAULT_ENV_PASSTHROUGH: &str = "VAULT_ENV_PASSTHROUGH";
/// `true` writes the shim's log lines as JSON.
pub const VAULT_JSON_LOG: &str = "VAULT_JSON_LOG";
/// `error`, `warn`, `info` (default) or `debug`.
pub const VAULT_LOG_LEVEL: &str = "VAULT_LOG_LEVEL";
/// Deadline for all of the shim's Vault traffic, retries included: `30s`, `2m`, `500ms`.
pub const VAULT_CLIENT_TIMEOUT: &str = "VAULT_CLIENT_TIMEOUT";
/// `true`/`false`: revoke the token before exec. Default: revoke tokens the shim obtained
/// by logging in, keep a token handed in through [`VAULT_TOKEN`].
pub const VAULT_REVOKE_TOKEN: &str = "VAULT_REVOKE_TOKEN";
/// `true` keeps the shim running as the application's parent (daemon mode).
pub const VAULT_ENV_DAEMON: &str = "VAULT_ENV_DAEMON";
/// AppRole role ID (falls back to [`VAULT_ROLE`]).
pub const VAULT_ROLE_ID: &str = "VAULT_ROLE_ID";
/// AppRole secret ID. Prefer [`VAULT_SECRET_ID_FILE`].
pub const VAULT_SECRET_ID: &str = "VAULT_SECRET_ID";
/// File holding the AppRole secret ID.
pub const VAULT_SECRET_ID_FILE: &str = "VAULT_SECRET_ID_FILE";
/// File holding the JWT for `kubernetes` and `jwt` login.
pub const HUSH_SA_TOKEN_PATH: &str = "HUSH_SA_TOKEN_PATH";
/// How many Vault reads may be in flight at once (default 8).
pub const HUSH_MAX_CONCURRENCY: &str = "HUSH_MAX_CONCURRENCY";

/// The Landlock policy for the application (see the shim's `policy` module for the
/// language), e.g. `ro:/usr,/etc;rw:/tmp;connect:5432`. Default: deny the service-account
/// token directory only.
pub const HUSH_LANDLOCK: &str = "HUSH_LANDLOCK";
/// Capabilities the application keeps: `keep` (default), `none`, or `NET_BIND_SERVICE,...`.
pub const HUSH_CAPABILITIES: &str = "HUSH_CAPABILITIES";
/// `true` drops the bounding set to the kept capabilities, so exec cannot hand others back.
pub const HUSH_CLEAR_BOUNDING_SET: &str = "HUSH_CLEAR_BOUNDING_SET";

/// Daemon mode: what a rotation does, `restart` (default: SIGTERM, grace, SIGKILL, start
/// the app again with the new secrets) or `exit` (stop the app and exit 75, so that
/// Kubernetes restarts the container).
pub const HUSH_ROTATION: &str = "HUSH_ROTATION";
/// Daemon mode: how long the app has to stop after SIGTERM before SIGKILL (default `10s`).
pub const HUSH_RESTART_GRACE: &str = "HUSH_RESTART_GRACE";
/// Daemon mode: how often KV v2 secrets are checked for a new version (default `60s`;
/// `0` turns it off).
pub const HUSH_KV_POLL_INTERVAL: &str = "HUSH_KV_POLL_INTERVAL";

/// Where the kubelet projects the service-account token.
pub const DEFAULT_SA_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// File holding a Vault token (read instead of [`VAULT_TOKEN`]).
pub const VAULT_TOKEN_FILE: &str = "VAULT_TOKEN_FILE";
/// File holding the JWT for `kubernetes` and `jwt` login (Bank-Vaults' name; wins over
/// [`HUSH_SA_TOKEN_PATH`]).
pub const VAULT_JWT_FILE: &str = "VAULT_JWT_FILE";
/// Directory of PEM files with CA certificates that sign Vault's server certificate.
pub const VAULT_CAPATH: &str = "VAULT_CAPATH";
/// PEM client certificate for TLS to Vault (mTLS).
pub const VAULT_CLIENT_CERT: &str = "VAULT_CLIENT_CERT";
/// PEM private key of [`VAULT_CLIENT_CERT`].
pub const VAULT_CLIENT_KEY: &str = "VAULT_CLIENT_KEY";
/// Name to check Vault's certificate against (SNI), instead of the host of [`VAULT_ADDR`].
pub const VAULT_TLS_SERVER_NAME: &str = "VAULT_TLS_SERVER_NAME";
/// How many times a failed Vault request is retried (Vault's client: default 2).
pub const VAULT_MAX_RETRIES: &str = "VAULT_MAX_RETRIES";
/// Comma-separated Vault paths: every key of each becomes a variable of the application.
pub const VAULT_ENV_FROM_PATH: &str = "VAULT_ENV_FROM_PATH";
/// How long to wait after resolving before the application starts (Go duration, default 0).
pub const VAULT_ENV_DELAY: &str = "VAULT_ENV_DELAY";
/// Transit key that decrypts `vault:v1:...` ciphertext values.
pub const VAULT_TRANSIT_KEY_ID: &str = "VAULT_TRANSIT_KEY_ID";
/// Mount path of the transit engine.
pub const VAULT_TRANSIT_PATH: &str = "VAULT_TRANSIT_PATH";
/// How many ciphertexts are decrypted per transit request (default 25).
pub const VAULT_TRANSIT_BATCH_SIZE: &str = "VAULT_TRANSIT_BATCH_SIZE";

/// The special value of [`VAULT_TOKEN`] (`BAO_TOKEN`: `bao:login`) that asks the shim to log
/// in and hand the token to the application (`bank-vaults/vault-env` `main.go`, `vaultLogin`).
pub const VAULT_LOGIN: &str = "vault:login";
/// The OpenBao spelling of [`VAULT_LOGIN`] (`bank-vaults/secret-init`
/// `pkg/provider/bao/config.go`, `baoLogin`).
pub const BAO_LOGIN: &str = "bao:login";

/// Variables Bank-Vaults' `vault-env` and `secret-init` read (or strip) that configure
/// nothing in Hush: the shim removes them from the application's environment all the same,
/// as they do (`bank-vaults/vault-env` `main.go` `sanitizeEnvmap`,
/// `bank-vaults/secret-init` `pkg/provider/{vault,bao}/config.go` `sanitizeEnvmap`,
/// `pkg/common/config.go`).
pub const STRIPPED_ONLY: &[&str] = &[
    "VAULT_AGENT_ADDR",
    "VAULT_SRV_LOOKUP",
    "VAULT_WRAP_TTL",
    "VAULT_MFA",
    "VAULT_CLUSTER_ADDR",
    "VAULT_REDIRECT_ADDR",
    "VAULT_CLI_NO_COLOR",
    "VAULT_RATE_LIMIT",
    "VAULT_ENV_LOG_SERVER",
    "BAO_AGENT_ADDR",
    "BAO_SRV_LOOKUP",
    "BAO_WRAP_TTL",
    "BAO_MFA",
    "BAO_CLUSTER_ADDR",
    "BAO_REDIRECT_ADDR",
    "BAO_CLI_NO_COLOR",
    "BAO_RATE_LIMIT",
    "SECRET_INIT_LOG_SERVER",
];

/// Whether `name` configures the shim (any name of any [`crate::settings::SETTINGS`] entry,
/// its Bank-Vaults and OpenBao aliases included) or is one of [`STRIPPED_ONLY`]. The shim
/// removes every such variable from the application's environment unless
/// [`VAULT_ENV_PASSTHROUGH`] names it.
pub fn is_config_variable(name: &str) -> bool {
    // Every such name starts with one of these (a test checks it): most application
    // variables are told apart without scanning the settings (the webhook asks for each
    // env entry of every Pod).
    CONFIG_PREFIXES.iter().any(|p| name.starts_with(p))
        && (crate::settings::by_env(name).is_some() || STRIPPED_ONLY.contains(&name))
}

/// The prefixes of every configuration variable's name (main names, aliases, [`STRIPPED_ONLY`]).
const CONFIG_PREFIXES: &[&str] = &["VAULT_", "BAO_", "HUSH_", "SECRET_INIT_"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_config_variable_has_a_config_prefix() {
        let names = crate::settings::SETTINGS
            .iter()
            .flat_map(|s| std::iter::once(s.env).chain(s.env_aliases.iter().copied()))
            .chain(STRIPPED_ONLY.iter().copied());
        for name in names {
            assert!(CONFIG_PREFIXES.iter().any(|p| name.starts_with(p)), "{name}");
            assert!(is_config_variable(name), "{name}");
        }
    }

    #[test]
    fn application_variables_are_not_config() {
        assert!(is_config_variable("VAULT_ADDR"));
        assert!(!is_config_variable("DATABASE_URL"));
        assert!(!is_config_variable("vault_addr"));
        // Bank-Vaults strips these too (vault-env main.go sanitizeEnvmap).
        for name in ["VAULT_TRANSIT_KEY_ID", "VAULT_ENV_DELAY", "VAULT_MAX_RETRIES", "BAO_ADDR", "VAULT_WRAP_TTL"] {
            assert!(is_config_variable(name), "{name}");
        }
    }
}
