//! Sending invitations: email over SMTP (lettre; the message `email::render` made, as
//! multipart/alternative of the plain text and a multipart/related HTML part with its inline
//! images: the QR code, the logo) and SMS through an HTTP gateway (a JSON `POST` with the number,
//! the organisation's label and the text). Both are optional: without them a customer stays
//! `Initiated` and the API hands the link and QR to the caller to deliver.

use lanyard_protocol::net::{HttpClient, Request};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;

use super::email::{InviteValues as Invite, RenderedEmail};

/// Why a transport could not be set up, or an invitation not sent. The messages sent to the
/// organisation (through a delivery attempt's detail) name no address or connection detail of
/// the SMS gateway.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// `LANYARD_SMTP_URL` is not a URL lettre can use.
    #[error("LANYARD_SMTP_URL is not a usable SMTP URL: {0}")]
    SmtpUrl(lettre::transport::smtp::Error),
    /// `LANYARD_SMTP_FROM` is not a mailbox.
    #[error("LANYARD_SMTP_FROM={from:?} is not a mailbox: {reason}")]
    From {
        /// The value given.
        from: String,
        /// Why it does not parse.
        reason: lettre::address::AddressError,
    },
    /// The customer's email address is not a mailbox.
    #[error("{to:?} is not a mailbox: {reason}")]
    Mailbox {
        /// The address.
        to: String,
        /// Why it does not parse.
        reason: lettre::address::AddressError,
    },
    /// The QR code's media type was refused.
    #[error("{0}")]
    ContentType(lettre::message::header::ContentTypeErr),
    /// The email could not be built.
    #[error("building the email: {0}")]
    Build(lettre::error::Error),
    /// The SMTP relay refused or could not be reached.
    #[error("SMTP: {0}")]
    Smtp(lettre::transport::smtp::Error),
    /// `LANYARD_SMS_URL` is not an http(s) URL.
    #[error("LANYARD_SMS_URL={0:?} is not an http(s) URL")]
    SmsUrl(String),
    /// `LANYARD_SMS_URL` is outside what the outbound policy lets the agent reach.
    #[error("LANYARD_SMS_URL: {0}")]
    SmsPolicy(lanyard_protocol::net::NetError),
    /// The gateway could not be reached (the public part of why; the log has the rest).
    #[error("SMS gateway: {0}")]
    SmsUnreachable(&'static str),
    /// The gateway answered with an error status.
    #[error("SMS gateway answered {0}")]
    SmsStatus(u16),
}

/// An SMTP relay.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// `url` as lettre reads it: `smtp://[user:pass@]host[:port][?tls=required|opportunistic]`
    /// or `smtps://...` (implicit TLS). The URL may hold a password: it is never logged.
    pub fn new(url: &str, from: &str) -> Result<Mailer, DeliveryError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(DeliveryError::SmtpUrl)?
            .timeout(Some(std::time::Duration::from_secs(15)))
            .build();
        let from = from.parse().map_err(|reason| DeliveryError::From {
            from: from.to_string(),
            reason,
        })?;
        Ok(Mailer { transport, from })
    }

    /// Sends the invitation `email` to `to`; returns the server's reply.
    pub async fn send(&self, to: &str, email: &RenderedEmail) -> Result<String, DeliveryError> {
        let to: Mailbox = to.parse().map_err(|reason| DeliveryError::Mailbox {
            to: to.to_string(),
            reason,
        })?;
        let message = self.message(to, email)?;
        let response = self
            .transport
            .send(message)
            .await
            .map_err(DeliveryError::Smtp)?;
        Ok(format!(
            "SMTP {}",
            response.message().collect::<Vec<_>>().join(" ")
        ))
    }
}

impl Mailer {
    /// The MIME message of `email` to `to`: multipart/alternative of the plain text and a
    /// multipart/related of the HTML with each image inline under its content id.
    fn message(&self, to: Mailbox, email: &RenderedEmail) -> Result<Message, DeliveryError> {
        let mut related = MultiPart::related().singlepart(SinglePart::html(email.html.clone()));
        for image in &email.images {
            related =
                related.singlepart(Attachment::new_inline(image.content_id.to_string()).body(
                    image.bytes.clone(),
                    ContentType::parse(&image.media_type).map_err(DeliveryError::ContentType)?,
                ));
        }
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::plain(email.text.clone()))
                    .multipart(related),
            )
            .map_err(DeliveryError::Build)
    }
}

/// An HTTP SMS gateway: `POST <url>` with `{"to", "from", "body"}` and an optional bearer token,
/// through the agent's hardened client (a gateway on a private network is named in its
/// allow-list).
pub struct SmsGateway {
    url: String,
    token: Option<zeroize::Zeroizing<String>>,
    client: HttpClient,
}

impl SmsGateway {
    /// A gateway at `url` (http or https, reachable under `client`'s policy), authenticated
    /// with `token` as a bearer token when there is one.
    pub fn new(
        url: &str,
        token: Option<String>,
        client: HttpClient,
    ) -> Result<SmsGateway, DeliveryError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(DeliveryError::SmsUrl(url.to_string()));
        }
        client.check_url(url).map_err(DeliveryError::SmsPolicy)?;
        Ok(SmsGateway {
            url: url.to_string(),
            token: token.map(zeroize::Zeroizing::new),
            client,
        })
    }

    /// The text message: the label first, so the customer sees who writes.
    pub fn text(label: &str, invite: &Invite<'_>) -> String {
        format!(
            "{label}: Hi {}, tap to connect with {} and receive your credential in the Lanyard app: {}",
            invite.customer_name, invite.organization_name, invite.url
        )
    }

    /// Sends the invitation to `to` (E.164); returns the gateway's status.
    /// The organisation reads the outcome: a failure names no address or connection detail
    /// (the operator's log has them).
    pub async fn send(
        &self,
        to: &str,
        label: &str,
        invite: &Invite<'_>,
    ) -> Result<String, DeliveryError> {
        let body = json!({
            "to": to,
            "from": label,
            "body": SmsGateway::text(label, invite),
        });
        let mut request =
            Request::post(&self.url, "application/json", body.to_string().into_bytes());
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {}", token.as_str()));
        }
        let response = self.client.send(request).await.map_err(|error| {
            tracing::warn!(%error, "SMS gateway");
            DeliveryError::SmsUnreachable(error.public())
        })?;
        let status = response.status;
        if response.is_success() {
            Ok(format!("SMS gateway answered {status}"))
        } else {
            Err(DeliveryError::SmsStatus(status))
        }
    }
}
