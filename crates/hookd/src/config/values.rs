//! Typed configuration values parsed from text: database URLs (with their backend and a redacted
//! form for logs), CIDR networks, HTTP URLs, HTTP header names and values.
//!
//! Parsers return a message without the key; the validator puts the key path in front.

use std::fmt;

/// Shown instead of a secret.
const MASK: &str = "****";

/// The database backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A `database_url` whose scheme names a supported backend. `Debug` and `Display` hide the
/// password; [`DatabaseUrl::expose`] gives the URL to connect with.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    backend: Backend,
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let Some((scheme, _)) = url.split_once(':') else {
            return Err("must be a URL like sqlite://hookd.db or postgres://user@host/db".into());
        };
        let backend = match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            _ => {
                return Err(format!(
                    "unsupported scheme `{scheme}`: expected sqlite:, postgres: or postgresql:"
                ))
            }
        };
        Ok(Self {
            url: url.to_owned(),
            backend,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The file of a `sqlite:` URL (`sqlite://hookd.db`, `sqlite:///var/lib/hookd.db`);
    /// `None` for PostgreSQL and for a database in memory.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        let rest = &self.url["sqlite:".len()..];
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let in_memory =
            path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory");
        (!in_memory).then(|| path.into())
    }

    /// The full URL, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.url))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact_url(&self.url))
    }
}

/// `url` with the password of its user info and any `password=` query parameter masked.
pub fn redact_url(url: &str) -> String {
    redact_query(&redact_userinfo(url))
}

fn redact_userinfo(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let Some(colon) = authority[..at].find(':') else {
        return url.to_owned();
    };
    format!("{}:{MASK}{}", &url[..start + colon], &url[start + at..])
}

fn redact_query(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}={MASK}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}?{}", pairs.join("&"))
}

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`) with no host bits set: the SSRF guard's
/// own type, parsed here at the configuration edge.
pub use hookd_core::net::Cidr;

/// Checks that `text` is an absolute `http://` or `https://` URL with a host; returns it without
/// trailing slashes.
pub fn http_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("`{}` is not a URL: {e}", redact_url(text)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must be an http:// or https:// URL, got scheme `{}`",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{}` has no host", redact_url(text)));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Checks that `name` is an HTTP header name: an RFC 7230 token.
pub fn header_name(name: &str) -> Result<(), String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(
            "not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)".into(),
        );
    }
    Ok(())
}

/// Checks that `value` is an HTTP header value: visible ASCII, spaces and tabs.
pub fn header_value(value: &str) -> Result<(), String> {
    if !value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Err("header value must be visible ASCII characters, spaces or tabs".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_select_a_backend_and_refuse_other_schemes() {
        let backend = |u: &str| DatabaseUrl::parse(u).map(|d| d.backend());
        assert_eq!(backend("sqlite://hookd.db"), Ok(Backend::Sqlite));
        assert_eq!(backend("sqlite::memory:"), Ok(Backend::Sqlite));
        assert_eq!(backend("postgres://u@h/db"), Ok(Backend::Postgres));
        assert_eq!(backend("postgresql://u@h/db"), Ok(Backend::Postgres));
        assert!(backend("mysql://u:p@h/db").unwrap_err().contains("`mysql`"));
        assert!(backend("hookd.db").is_err());
    }

    #[test]
    fn passwords_are_masked() {
        let cases = [
            (
                "postgres://hookd:s3cret@db:5432/hookd",
                "postgres://hookd:****@db:5432/hookd",
            ),
            (
                "postgres://a:b:c@db/x?password=p&sslmode=on",
                "postgres://a:****@db/x?password=****&sslmode=on",
            ),
            ("postgres://hookd@db/hookd", "postgres://hookd@db/hookd"),
            ("sqlite://hookd.db", "sqlite://hookd.db"),
            ("http://db/x@y", "http://db/x@y"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
        let parsed = DatabaseUrl::parse(cases[0].0).unwrap();
        assert_eq!(format!("{parsed:?}"), format!("{:?}", cases[0].1));
        assert_eq!(parsed.expose(), cases[0].0);
    }

    #[test]
    fn http_urls_need_http_scheme_and_host() {
        assert_eq!(
            http_url("https://hooks.example.com/").unwrap(),
            "https://hooks.example.com"
        );
        assert_eq!(
            http_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(http_url("ftp://example.com").unwrap_err().contains("`ftp`"));
        assert!(http_url("example.com").is_err());
        assert!(http_url("http://").is_err());
    }

    #[test]
    fn header_names_are_tokens_and_values_visible_ascii() {
        assert!(header_name("X-Tenant").is_ok());
        assert!(header_name("X Bad").is_err());
        assert!(header_name("").is_err());
        assert!(header_name("X:Y").is_err());
        assert!(header_value("Bearer abc\tdef").is_ok());
        assert!(header_value("line\nbreak").is_err());
        assert!(header_value("café").is_err());
    }
}
