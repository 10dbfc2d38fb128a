//! API Gateway's JWT authorizer: the bearer token must be an RS256 JWT signed by a key
//! of the JWKS (by its `kid`), from the issuer, for the audience, within `nbf`/`exp`.
//! The claims reach the function as API Gateway passes them, every value a string.

use std::collections::BTreeMap;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header,
};
use serde_json::{Map, Value};

/// Why a request was not authorized (each is a 401, as API Gateway answers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthorized {
    /// No `Authorization: Bearer …` header.
    #[error("no bearer token")]
    Missing,
    /// The token is not valid: its reason, for `WWW-Authenticate`.
    #[error("{0}")]
    Invalid(String),
}

/// The JWKS, issuer and audience tokens are checked against.
pub struct Authorizer {
    keys: Vec<(Option<String>, DecodingKey)>,
    validation: Validation,
}

/// Why the authorizer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The JWKS is not JSON of the expected shape.
    #[error("the JWKS does not parse: {0}")]
    Jwks(#[from] serde_json::Error),
    /// A key of the JWKS cannot be used.
    #[error("a JWKS key cannot be used: {0}")]
    Key(#[from] jsonwebtoken::errors::Error),
}

impl Authorizer {
    /// Checks tokens against `jwks` (JSON), for `issuer` and `audience`.
    pub fn new(jwks: &str, issuer: &str, audience: &str) -> Result<Self, SetupError> {
        let set: JwkSet = serde_json::from_str(jwks)?;
        let keys = set
            .keys
            .iter()
            .map(|jwk| Ok((jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)?)))
            .collect::<Result<_, jsonwebtoken::errors::Error>>()?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        Ok(Self { keys, validation })
    }

    /// The claims of the request's bearer token (`authorization` header value), as
    /// API Gateway passes them to the function.
    pub fn claims(
        &self,
        authorization: Option<&str>,
    ) -> Result<BTreeMap<String, String>, Unauthorized> {
        let token = authorization
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(Unauthorized::Missing)?;
        let header = decode_header(token).map_err(|e| Unauthorized::Invalid(e.to_string()))?;
        let key = self
            .keys
            .iter()
            .find(|(kid, _)| header.kid.is_none() || kid == &header.kid)
            .map(|(_, key)| key)
            .ok_or_else(|| {
                Unauthorized::Invalid("no key of the JWKS has the token's kid".into())
            })?;
        let data = decode::<Map<String, Value>>(token, key, &self.validation)
            .map_err(|e| Unauthorized::Invalid(e.to_string()))?;
        Ok(data
            .claims
            .into_iter()
            .map(|(name, value)| (name, claim_text(&value)))
            .collect())
    }
}

/// A claim as API Gateway hands it to the function: a string, numbers and booleans in
/// their JSON form, arrays as `[a b]`.
fn claim_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(claim_text).collect();
            format!("[{}]", items.join(" "))
        }
        other => other.to_string(),
    }
}

/// A token for `tenant` (claim `claim`) signed with `private_pem` (RS256, `kid`),
/// from `issuer` for `audience`, valid from `now` for `ttl_seconds`.
pub fn token(
    private_pem: &[u8],
    kid: &str,
    claims: &TokenClaims<'_>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let mut body = Map::new();
    body.insert("iss".into(), claims.issuer.into());
    body.insert("aud".into(), claims.audience.into());
    body.insert("sub".into(), claims.tenant.into());
    body.insert(claims.claim.into(), claims.tenant.into());
    body.insert("iat".into(), claims.now.into());
    body.insert("nbf".into(), claims.now.into());
    body.insert("exp".into(), (claims.now + claims.ttl_seconds).into());
    jsonwebtoken::encode(&header, &body, &EncodingKey::from_rsa_pem(private_pem)?)
}

/// What a local token says.
#[derive(Debug, Clone, Copy)]
pub struct TokenClaims<'a> {
    /// `iss`.
    pub issuer: &'a str,
    /// `aud`.
    pub audience: &'a str,
    /// The tenant claim's name.
    pub claim: &'a str,
    /// The tenant.
    pub tenant: &'a str,
    /// `iat`/`nbf`, seconds since the epoch.
    pub now: i64,
    /// `exp` − `nbf`.
    pub ttl_seconds: i64,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 2048-bit test key and its JWKS (kid `test`), made with openssl.
    pub const PRIVATE_PEM: &str = include_str!("../testdata/key.pem");
    pub const JWKS: &str = include_str!("../testdata/jwks.json");

    fn claims(now: i64) -> TokenClaims<'static> {
        TokenClaims {
            issuer: "https://modelwatch.local",
            audience: "modelwatch",
            claim: "tenant_id",
            tenant: "acme",
            now,
            ttl_seconds: 3600,
        }
    }

    fn authorizer() -> Authorizer {
        Authorizer::new(JWKS, "https://modelwatch.local", "modelwatch").expect("authorizer")
    }

    #[test]
    fn a_valid_token_passes_its_claims_as_strings() {
        let now = chrono::Utc::now().timestamp();
        let token = token(PRIVATE_PEM.as_bytes(), "test", &claims(now)).expect("signed");
        let claims = authorizer()
            .claims(Some(&format!("Bearer {token}")))
            .expect("valid");
        assert_eq!(claims["tenant_id"], "acme");
        assert_eq!(claims["exp"], (now + 3600).to_string());
        assert_eq!(
            claim_text(&serde_json::json!(["read", "write"])),
            "[read write]"
        );
    }

    #[test]
    fn every_failed_check_is_unauthorized() {
        let now = chrono::Utc::now().timestamp();
        let sign =
            |c: TokenClaims<'_>, kid: &str| token(PRIVATE_PEM.as_bytes(), kid, &c).expect("signed");
        let authorizer = authorizer();
        let check = |token: &str| authorizer.claims(Some(&format!("Bearer {token}")));
        assert_eq!(authorizer.claims(None), Err(Unauthorized::Missing));
        assert_eq!(
            authorizer.claims(Some("Basic abc")),
            Err(Unauthorized::Missing)
        );
        let expired = sign(
            TokenClaims {
                now: now - 7200,
                ..claims(now)
            },
            "test",
        );
        let early = sign(
            TokenClaims {
                now: now + 600,
                ..claims(now)
            },
            "test",
        );
        let issuer = sign(
            TokenClaims {
                issuer: "https://elsewhere",
                ..claims(now)
            },
            "test",
        );
        let audience = sign(
            TokenClaims {
                audience: "other",
                ..claims(now)
            },
            "test",
        );
        let unknown_key = sign(claims(now), "rotated-away");
        let valid = sign(claims(now), "test");
        let (head, rest) = valid.split_once('.').expect("JWT");
        let (_, signature) = rest.split_once('.').expect("JWT");
        let tampered = format!("{head}.{}.{signature}", "eyJ0ZW5hbnRfaWQiOiJldmlsIn0");
        for bad in [
            &expired,
            &early,
            &issuer,
            &audience,
            &unknown_key,
            &tampered,
            &"not-a-jwt".to_owned(),
        ] {
            assert!(matches!(check(bad), Err(Unauthorized::Invalid(_))), "{bad}");
        }
        assert!(check(&valid).is_ok());
    }
}
