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

/// Every variable that configures the shim. The shim removes them all from the
/// application's environment unless [`VAULT_ENV_PASSTHROUGH`] names them.
pub const CONFIG_VARIABLES: &[&str] = &[
    VAULT_ADDR,
    VAULT_TOKEN,
    VAULT_ROLE,
    VAULT_AUTH_METHOD,
    VAULT_PATH,
    VAULT_NAMESPACE,
    VAULT_CACERT,
    VAULT_SKIP_VERIFY,
    VAULT_IGNORE_MISSING_SECRETS,
    VAULT_ENV_PASSTHROUGH,
    VAULT_JSON_LOG,
    VAULT_LOG_LEVEL,
    VAULT_CLIENT_TIMEOUT,
    VAULT_REVOKE_TOKEN,
    VAULT_ENV_DAEMON,
    VAULT_ROLE_ID,
    VAULT_SECRET_ID,
    VAULT_SECRET_ID_FILE,
    HUSH_SA_TOKEN_PATH,
    HUSH_MAX_CONCURRENCY,
    HUSH_LANDLOCK,
    HUSH_CAPABILITIES,
    HUSH_CLEAR_BOUNDING_SET,
    HUSH_ROTATION,
    HUSH_RESTART_GRACE,
    HUSH_KV_POLL_INTERVAL,
];

/// Whether `name` is one of [`CONFIG_VARIABLES`].
pub fn is_config_variable(name: &str) -> bool {
    CONFIG_VARIABLES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_variables_are_unique() {
        let mut names = CONFIG_VARIABLES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CONFIG_VARIABLES.len());
    }

    #[test]
    fn application_variables_are_not_config() {
        assert!(is_config_variable("VAULT_ADDR"));
        assert!(!is_config_variable("DATABASE_URL"));
        assert!(!is_config_variable("vault_addr"));
    }
}
