//! What can go wrong obtaining credentials, and what kind of trouble it is.
//!
//! Each part has its own error (`profile::ProfileError`, `sts::StsError`, `imds::ImdsError`); a link
//! of the chain, a background fetch and an assumed-role session fail with [`Error`], which adds where
//! the failure happened (which file, profile or section) without changing what it is:
//! [`Error::kind`] looks through that context. Every message is the one the chain's report, the
//! refresh warnings and the docs show; none carries a secret, a token, an external id or an OIDC
//! token.

use super::imds::ImdsError;
use super::profile::ProfileError;
use super::sts::StsError;
use crate::ecs::credentials::CredentialError;
use chrono::{DateTime, Utc};
use std::path::PathBuf;

/// What kind of trouble a failure is: what the caller can do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A file, variable, flag or value the user must fix (a bad profile file, an empty role ARN or
    /// OIDC token file, a bad endpoint). Trying again without a change fails the same way.
    Config,
    /// STS or the metadata service answered with an error (the code and message are kept): a role's
    /// trust policy, a permission, no role attached, or trouble on the service's side (HTTP 5xx).
    Refused,
    /// The service could not be reached (connection, timeout, an interrupted answer), or the
    /// credentials this depends on are not available right now: worth retrying.
    Unreachable,
    /// An answer came back but cannot be used: not the expected JSON, fields missing, an unreadable
    /// expiration, or credentials that expire too soon to use.
    Malformed,
    /// The HTTP client could not be built on this machine: neither configuration nor the service.
    Local,
}

/// Why a link of the chain, a fetch of temporary credentials or an assumed-role session failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A credentials file could not be read, or what it says is not usable.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Sts(#[from] StsError),
    #[error(transparent)]
    Imds(#[from] ImdsError),
    #[error("HOME is not set, so the file cannot be located")]
    NoHome,
    /// The CLI's `config.json` is not there.
    #[error("no file at {}", .0.display())]
    NoFile(PathBuf),
    /// Neither of the shared credentials file's default names is there.
    #[error("no file at {} or {}", .first.display(), .second.display())]
    NoFiles { first: PathBuf, second: PathBuf },
    #[error("ALIBABA_CLOUD_CREDENTIALS_FILE names {}, which does not exist", .0.display())]
    CredentialsFileMissing(PathBuf),
    /// A credentials file that is not what it should be (its content, not its reading).
    #[error("{}: {source}", .path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: ProfileError,
    },
    /// A profile of the CLI's `config.json` was understood, but its credentials could not be had.
    #[error("{} profile {name:?}: {source}", .path.display())]
    InCliProfile {
        path: PathBuf,
        name: String,
        #[source]
        source: Box<Error>,
    },
    /// A section of the shared credentials file was understood, but its credentials could not be had.
    #[error("{} [{section}]: {source}", .path.display())]
    InIniSection {
        path: PathBuf,
        section: String,
        #[source]
        source: Box<Error>,
    },
    /// The credentials an `AssumeRole` of a profile is signed with are not available.
    #[error("the source credentials: {0}")]
    SourceCredentials(#[source] CredentialError),
    /// The chain's own credentials, which an account's `AssumeRole` is signed with, are not available.
    #[error("the chain's credentials: {0}")]
    ChainCredentials(#[source] CredentialError),
    #[error("reading the OIDC token file {}: {source}", .path.display())]
    OidcTokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The first credentials of a link are already within the safety window of their expiry.
    #[error("the credentials received expire at {}, too soon to use", .expiration.format("%Y-%m-%dT%H:%M:%SZ"))]
    ExpiresTooSoon { expiration: DateTime<Utc> },
    /// Refreshed credentials are already within the safety window of their expiry.
    #[error("the refreshed credentials expire at {}, too soon to use", .expiration.format("%Y-%m-%dT%H:%M:%SZ"))]
    RefreshedExpiresTooSoon { expiration: DateTime<Utc> },
}

impl Error {
    /// What kind of trouble this is; the file, profile or section it happened in does not change it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Profile(e) => e.kind(),
            Error::Sts(e) => e.kind(),
            Error::Imds(e) => e.kind(),
            Error::NoHome
            | Error::NoFile(_)
            | Error::NoFiles { .. }
            | Error::CredentialsFileMissing(_)
            | Error::OidcTokenFile { .. } => ErrorKind::Config,
            Error::InFile { source, .. } => source.kind(),
            Error::InCliProfile { source, .. } | Error::InIniSection { source, .. } => {
                source.kind()
            }
            Error::SourceCredentials(e) | Error::ChainCredentials(e) => match e {
                CredentialError::MissingVariable(_) => ErrorKind::Config,
                CredentialError::Unavailable(_) => ErrorKind::Unreachable,
            },
            Error::ExpiresTooSoon { .. } | Error::RefreshedExpiresTooSoon { .. } => {
                ErrorKind::Malformed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::imds::{Imds, TokenFailure};
    use crate::credentials::sts::{AnswerError, RoleRequest, Sts};
    use crate::credentials::testing::{closed_port, serve, serve_echo, stalled, truncated};
    use crate::ecs::credentials::{Credentials, Secret};
    use std::path::Path;

    fn source() -> Credentials {
        Credentials {
            access_key_id: "LTAIid".into(),
            access_key_secret: Secret::new("src/secret+Kq="),
            security_token: Some(Secret::new("CAIS+tok/en=Zx")),
        }
    }

    fn role() -> RoleRequest {
        RoleRequest::new("acs:ram::1:role/r")
    }

    #[test]
    fn messages_of_the_chain_level_variants() {
        let at = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let cases: Vec<(Error, &str, ErrorKind)> = vec![
            (
                Error::NoHome,
                "HOME is not set, so the file cannot be located",
                ErrorKind::Config,
            ),
            (
                Error::NoFile("/h/.aliyun/config.json".into()),
                "no file at /h/.aliyun/config.json",
                ErrorKind::Config,
            ),
            (
                Error::NoFiles {
                    first: "/h/a".into(),
                    second: "/h/b".into(),
                },
                "no file at /h/a or /h/b",
                ErrorKind::Config,
            ),
            (
                Error::CredentialsFileMissing("/x".into()),
                "ALIBABA_CLOUD_CREDENTIALS_FILE names /x, which does not exist",
                ErrorKind::Config,
            ),
            (
                Error::InFile {
                    path: "/f".into(),
                    source: ProfileError::NoSuchProfile("p".into()),
                },
                "/f: no profile named \"p\"",
                ErrorKind::Config,
            ),
            (
                Error::OidcTokenFile {
                    path: "/t".into(),
                    source: io(),
                },
                "reading the OIDC token file /t: entity not found",
                ErrorKind::Config,
            ),
            (
                Error::SourceCredentials(CredentialError::Unavailable("refresh pending".into())),
                "the source credentials: credentials unavailable: refresh pending",
                ErrorKind::Unreachable,
            ),
            (
                Error::ChainCredentials(CredentialError::Unavailable("refresh pending".into())),
                "the chain's credentials: credentials unavailable: refresh pending",
                ErrorKind::Unreachable,
            ),
            (
                Error::SourceCredentials(CredentialError::MissingVariable(
                    "ALIBABA_CLOUD_ACCESS_KEY_ID",
                )),
                "the source credentials: ALIBABA_CLOUD_ACCESS_KEY_ID is not set: export it, or set both ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                ErrorKind::Config,
            ),
            (
                Error::ExpiresTooSoon { expiration: at },
                "the credentials received expire at 2020-01-01T00:00:00Z, too soon to use",
                ErrorKind::Malformed,
            ),
            (
                Error::RefreshedExpiresTooSoon { expiration: at },
                "the refreshed credentials expire at 2020-01-01T00:00:00Z, too soon to use",
                ErrorKind::Malformed,
            ),
        ];
        for (e, message, kind) in cases {
            assert_eq!(e.to_string(), message);
            assert_eq!(e.kind(), kind, "{e}");
        }
    }

    /// The file, profile or section a failure happened in adds to the message, never changes the kind:
    /// STS being unreachable from inside a profile is not a configuration error.
    #[test]
    fn context_keeps_the_kind_of_its_cause() {
        let refused = || {
            Error::Sts(StsError::Answer {
                action: "AssumeRole",
                host: "sts.aliyuncs.com".into(),
                source: AnswerError::Refused {
                    status: 403,
                    code: "NoPermission".into(),
                    message: "denied".into(),
                    request_id: None,
                },
            })
        };
        let in_profile = Error::InCliProfile {
            path: "/h/.aliyun/config.json".into(),
            name: "p".into(),
            source: Box::new(refused()),
        };
        assert_eq!(in_profile.kind(), ErrorKind::Refused);
        assert_eq!(
            in_profile.to_string(),
            "/h/.aliyun/config.json profile \"p\": AssumeRole at sts.aliyuncs.com: HTTP 403 NoPermission: denied (RequestId -)"
        );
        let in_section = Error::InIniSection {
            path: "/h/credentials".into(),
            section: "default".into(),
            source: Box::new(Error::ExpiresTooSoon {
                expiration: Utc::now(),
            }),
        };
        assert_eq!(in_section.kind(), ErrorKind::Malformed);
        assert!(in_section
            .to_string()
            .starts_with("/h/credentials [default]: the credentials received expire at "));
        // And the cause stays reachable for callers that want the details.
        let cause = std::error::Error::source(&in_profile).expect("a source");
        assert_eq!(
            cause.to_string(),
            "AssumeRole at sts.aliyuncs.com: HTTP 403 NoPermission: denied (RequestId -)"
        );
    }

    #[tokio::test]
    async fn sts_failures_by_kind() {
        // Configuration: caught before any request.
        let e = Sts::new("http://192.0.2.1/", false).err().expect("refused");
        assert!(matches!(e, StsError::Endpoint(_)), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Config);
        let sts = Sts::new(&closed_port(), false).unwrap();
        let mut short = role();
        short.duration_secs = 60;
        let e = sts.assume_role(&source(), &short).await.unwrap_err();
        assert!(matches!(e, StsError::Request(_)), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Config);
        let e = sts
            .assume_role_with_oidc(&role(), "p", &Secret::new(""))
            .await
            .unwrap_err();
        assert!(matches!(e, StsError::EmptyOidcToken), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Config);

        // Not reached: nobody listening, or the answer cut short.
        let e = sts.assume_role(&source(), &role()).await.unwrap_err();
        assert!(matches!(e, StsError::Transport { .. }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Unreachable);
        let sts = Sts::new(&truncated().await, false).unwrap();
        let e = sts.assume_role(&source(), &role()).await.unwrap_err();
        assert!(matches!(e, StsError::ReadingAnswer { .. }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Unreachable);
        assert!(
            e.to_string()
                .starts_with("AssumeRole at 127.0.0.1: reading the answer: "),
            "{e}"
        );

        // Refused: the code, message, status and request id are kept.
        let url = serve(&[(
            "POST",
            "/",
            500,
            r#"{"RequestId":"R9","Code":"InternalError","Message":"try later"}"#,
        )])
        .await;
        let e = Sts::new(&url, false)
            .unwrap()
            .assume_role(&source(), &role())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused);
        match &e {
            StsError::Answer {
                action: "AssumeRole",
                source:
                    AnswerError::Refused {
                        status: 500,
                        code,
                        message,
                        request_id,
                    },
                ..
            } => {
                assert_eq!(code, "InternalError");
                assert_eq!(message, "try later");
                assert_eq!(request_id.as_deref(), Some("R9"));
            }
            other => panic!("{other:?}"),
        }
        let url = serve(&[("POST", "/", 502, "<html>bad gateway</html>")]).await;
        let e = Sts::new(&url, false)
            .unwrap()
            .assume_role(&source(), &role())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert_eq!(
            e.to_string(),
            "AssumeRole at 127.0.0.1: HTTP 502: <html>bad gateway</html>"
        );

        // Malformed: an answer, but no credentials in it.
        for body in [
            "<html>",
            "{}",
            r#"{"Credentials":{"AccessKeyId":"a"}}"#,
            r#"{"Credentials":{"AccessKeyId":"a","AccessKeySecret":"b","SecurityToken":"c","Expiration":"later"}}"#,
        ] {
            let url = serve(&[("POST", "/", 200, body)]).await;
            let e = Sts::new(&url, false)
                .unwrap()
                .assume_role(&source(), &role())
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Malformed, "{body}: {e}");
        }
    }

    /// STS echoing the request (as `SignatureDoesNotMatch` does) puts neither the source secret, its
    /// token, the signature nor the OIDC token into the error, shown or debugged.
    #[tokio::test]
    async fn sts_errors_carry_no_secret() {
        let sts = Sts::new(&serve_echo(400).await, false).unwrap();
        let e = sts.assume_role(&source(), &role()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused);
        let (shown, debugged) = (e.to_string(), format!("{e:?}"));
        assert!(
            shown.contains("SignatureDoesNotMatch")
                && shown.contains("AccessKeyId=LTAIid")
                && shown.contains("SecurityToken=***")
                && shown.contains("Signature=***"),
            "{shown}"
        );
        for text in [&shown, &debugged] {
            for secret in [
                "src/secret+Kq=",
                "src%2Fsecret",
                "CAIS+tok/en=Zx",
                "CAIS%2Btok",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
        // The external id is confidential too (never printed): an echo of it is masked as well.
        let mut with_external_id = role();
        with_external_id.external_id = Some("ext/Confidential+7".into());
        let e = sts
            .assume_role(&source(), &with_external_id)
            .await
            .unwrap_err();
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(text.contains("ExternalId=***"), "{text}");
            assert!(!text.contains("Confidential"), "{text}");
        }
        let jwt = "eyJhbGciOi.payload+/=.sig";
        let e = sts
            .assume_role_with_oidc(&role(), "acs:ram::1:oidc-provider/p", &Secret::new(jwt))
            .await
            .unwrap_err();
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(text.contains("OIDCToken=***"), "{text}");
            assert!(!text.contains("payload"), "{text}");
        }
        // A transport failure's details are the URL and the socket's error, no parameter.
        let sts = Sts::new(&closed_port(), false).unwrap();
        let e = sts.assume_role(&source(), &role()).await.unwrap_err();
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains("secret") && !text.contains("tok"), "{text}");
        }
    }

    #[tokio::test]
    async fn metadata_failures_by_kind() {
        let e = Imds::new("http://10.0.0.1", false).err().expect("refused");
        assert_eq!(e.kind(), ErrorKind::Config);
        let imds = Imds::new(&closed_port(), false).unwrap();
        let e = imds.credentials(Some("a/b")).await.unwrap_err();
        assert!(
            matches!(e, ImdsError::BadRoleName { listed: false, .. }),
            "{e:?}"
        );
        assert_eq!(e.kind(), ErrorKind::Config);

        // Not reached: refused connections, with and without IMDSv1; a service that never answers.
        let e = imds.credentials(Some("R")).await.unwrap_err();
        assert!(matches!(e, ImdsError::Get { .. }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Unreachable);
        let v2_only = Imds::new(&closed_port(), true).unwrap();
        let e = v2_only.credentials(Some("R")).await.unwrap_err();
        assert!(
            matches!(
                e,
                ImdsError::Token {
                    source: TokenFailure::Transport(_),
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.kind(), ErrorKind::Unreachable);
        let silent = Imds::new(&stalled().await, true).unwrap();
        let e = silent.credentials(Some("R")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unreachable);
        assert!(e.to_string().contains(": timed out"), "{e}");

        // Refused, malformed: by what the service answers.
        let p = "/latest/meta-data/ram/security-credentials/";
        let refusing = serve(&[("PUT", "/latest/api/token", 403, "")]).await;
        let e = Imds::new(&refusing, true)
            .unwrap()
            .credentials(Some("R"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                ImdsError::Token {
                    source: TokenFailure::Status(403),
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.kind(), ErrorKind::Refused);
        let listing = serve(&[("GET", p, 200, "../etc\n")]).await;
        let e = Imds::new(&listing, false)
            .unwrap()
            .credentials(None)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ImdsError::BadRoleName { listed: true, .. }),
            "{e:?}"
        );
        assert_eq!(e.kind(), ErrorKind::Malformed);
        let url = serve(&[
            ("GET", p, 200, ""),
            ("GET", &format!("{p}Failed"), 200, r#"{"Code":"Failed"}"#),
            ("GET", &format!("{p}Junk"), 200, "<html>"),
            ("GET", &format!("{p}Partial"), 200, r#"{"Code":"Success"}"#),
        ])
        .await;
        let imds = Imds::new(&url, false).unwrap();
        let e = imds.credentials(None).await.unwrap_err();
        assert!(matches!(e, ImdsError::NoRole), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Refused);
        let e = imds.credentials(Some("Failed")).await.unwrap_err();
        assert!(
            matches!(&e, ImdsError::NotSuccess { code, .. } if code == "Failed"),
            "{e:?}"
        );
        assert_eq!(e.kind(), ErrorKind::Refused);
        let e = imds.credentials(Some("Missing")).await.unwrap_err();
        assert!(matches!(e, ImdsError::Status { status: 404, .. }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Refused);
        for role in ["Junk", "Partial"] {
            let e = imds.credentials(Some(role)).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Malformed, "{role}: {e}");
        }
    }

    /// Through the chain's own code paths: the wrapper of a file link keeps its cause's kind.
    #[tokio::test]
    async fn chain_links_keep_the_kind() {
        use crate::credentials::chain::{build, ChainOptions};
        use crate::credentials::profile::Spec;
        let opts = ChainOptions {
            sts_endpoint: Some(closed_port()),
            ..ChainOptions::default()
        };
        let role_spec = Spec::RamRoleArn {
            source: Box::new(Spec::Static(source())),
            request: role(),
            sts_region: None,
            vpc: None,
        };
        let e = build(&role_spec, "", &opts).await.unwrap_err();
        assert!(matches!(e, Error::Sts(StsError::Transport { .. })), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Unreachable);
        let oidc = |file: &Path| Spec::Oidc {
            request: role(),
            provider_arn: "p".into(),
            token_file: file.to_path_buf(),
            sts_region: None,
            vpc: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let e = build(&oidc(&dir.path().join("absent")), "", &opts)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::OidcTokenFile { .. }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Config);
        let e = build(
            &Spec::EcsRamRole { role_name: None },
            "",
            &ChainOptions {
                metadata_endpoint: Some(closed_port()),
                ..ChainOptions::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Imds(ImdsError::Get { .. })), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Unreachable);
    }

    #[test]
    fn profile_errors_are_configuration() {
        use crate::credentials::profile::{parse_cli_config, parse_ini_profile};
        for e in [
            parse_cli_config("{", None).unwrap_err(),
            parse_cli_config(r#"{"profiles":[{"name":"x","mode":"AK"}]}"#, Some("x")).unwrap_err(),
            parse_ini_profile("[a]\ntype = ram_role_arn\naccess_key_id = a\naccess_key_secret = b\nrole_arn = r\n", "b").unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::Config, "{e}");
            assert_eq!(Error::from(e).kind(), ErrorKind::Config);
        }
    }
}
