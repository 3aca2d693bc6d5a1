//! The `comment` notifier (category `activity`, severity `normal`, contract 1.0).
//!
//! Payload:
//! `{"thread": {"id": "...", "title": "..."}, "author": {"name": "...", "id": "..."},
//! "text": "...", "followers": [{...}, ...]}`; each follower is
//! `{"id": "...", "email": "...", "name": "..."}`. `thread.id`, `thread.title`,
//! `author.name`, `text`, `followers` (an array, possibly empty) and every follower's `id` are
//! required (non-empty strings); `author.id` and a follower's `email` and `name` are optional.
//! `thread.id` is at most 193 bytes, so that the digest key `thread:<id>` fits in 200.
//!
//! One recipient per follower, with `{"name": ...}` as its data when the follower has a name.
//! The author is not a recipient: a follower whose `id` equals `author.id` is left out.
//! Channels per recipient: `in-app` always, sent at once; `email` if it has an address, held
//! for digest under the digest key `thread:<thread.id>`, so that a tenant's digest rule can
//! collect a thread's comments into one email. The notifier also lets the host fold a
//! delivery that quiet hours or a cap would defer into the recipient's next digest.
//!
//! Both channels render the `comment` template with the data
//! `{"thread_title", "thread_id", "author", "text", "recipient_id"}` (`author` being the
//! author's name).

use belfry_plugin_sdk::notifier::{Description, Guest, Hold, PlanError, RecipientPlan, Severity};
use belfry_plugin_sdk::payload::{
    PayloadError, as_object, missing, optional_non_empty_string, parse_object, required_object,
    required_string, wrong_type,
};
use belfry_plugin_sdk::types::{Channel, Recipient, RenderRequest};
use serde_json::{Map, Value, json};

const KEY: &str = "comment";
/// A digest key is 1 to 200 bytes; `thread:` takes 7 of them.
const MAX_THREAD_ID_BYTES: usize = 200 - "thread:".len();

struct CommentNotifier;

impl Guest for CommentNotifier {
    fn describe() -> Description {
        Description {
            key: KEY.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            category: "activity".to_string(),
            channels: vec![Channel::InApp, Channel::Email],
            description: "Tells people about new comments on a thread they follow: in-app at \
                          once, email held for a digest per thread"
                .to_string(),
            severity: Severity::Normal,
            fallbacks: Vec::new(),
            fold_deferred: true,
            workflow: None,
        }
    }

    fn recipients(payload: String) -> Result<Vec<Recipient>, PlanError> {
        let comment = Comment::parse(&payload)?;
        Ok(comment
            .followers
            .iter()
            .filter(|f| !comment.is_author(&f.id))
            .map(Follower::recipient)
            .collect())
    }

    fn channels(payload: String, recipient: Recipient) -> Result<RecipientPlan, PlanError> {
        let comment = Comment::parse(&payload)?;
        let mut channels = Vec::with_capacity(2);
        let mut held = Vec::with_capacity(1);
        channels.push(Channel::InApp);
        if recipient.email.as_deref().is_some_and(|e| !e.is_empty()) {
            channels.push(Channel::Email);
            held.push(Hold {
                channel: Channel::Email,
                digest_key: Some(comment.digest_key()),
            });
        }
        Ok(RecipientPlan {
            channels,
            severity: None,
            held,
        })
    }

    fn build(
        payload: String,
        recipient: Recipient,
        channel: Channel,
    ) -> Result<RenderRequest, PlanError> {
        let comment = Comment::parse(&payload)?;
        match channel {
            Channel::InApp => {}
            Channel::Email => {
                let entry = comment.followers.iter().find(|f| f.id == recipient.id);
                let has_email = recipient.email.as_deref().is_some_and(|e| !e.is_empty())
                    || entry.is_some_and(|f| f.email.is_some());
                if !has_email {
                    let path = entry.map_or("followers", |f| f.path.as_str());
                    return Err(PlanError::InvalidPayload(format!(
                        "missing field `{path}.email` (needed for the email channel)"
                    )));
                }
            }
            other => {
                return Err(PlanError::Failed(format!(
                    "the comment notifier does not use the {} channel",
                    other.as_str()
                )));
            }
        }
        let data = json!({
            "thread_title": comment.thread_title,
            "thread_id": comment.thread_id,
            "author": comment.author_name,
            "text": comment.text,
            "recipient_id": recipient.id,
        });
        Ok(RenderRequest {
            template: KEY.to_string(),
            channel,
            data: data.to_string(),
            locale: None,
        })
    }
}

struct Comment {
    thread_id: String,
    thread_title: String,
    author_name: String,
    author_id: Option<String>,
    text: String,
    followers: Vec<Follower>,
}

/// One entry of `payload.followers`.
struct Follower {
    /// Where it is in the payload, for error messages: `followers[2]`.
    path: String,
    id: String,
    email: Option<String>,
    name: Option<String>,
}

impl Comment {
    fn parse(payload: &str) -> Result<Self, PayloadError> {
        let payload = parse_object(payload)?;
        let thread = required_object(&payload, "thread", "thread")?;
        let thread_id = required_string(thread, "id", "thread.id")?;
        if thread_id.len() > MAX_THREAD_ID_BYTES {
            return Err(wrong_type(
                "thread.id",
                &format!("at most {MAX_THREAD_ID_BYTES} bytes long"),
            ));
        }
        let thread_title = required_string(thread, "title", "thread.title")?;
        let author = required_object(&payload, "author", "author")?;
        let author_name = required_string(author, "name", "author.name")?;
        let author_id = optional_non_empty_string(author, "id", "author.id")?;
        let text = required_string(&payload, "text", "text")?;
        let followers = match payload.get("followers") {
            None | Some(Value::Null) => return Err(missing("followers")),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, f)| Follower::parse(f, format!("followers[{i}]")))
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(wrong_type("followers", "an array of objects")),
        };
        Ok(Comment {
            thread_id,
            thread_title,
            author_name,
            author_id,
            text,
            followers,
        })
    }

    /// Whether `id` is the comment's author (never a recipient).
    fn is_author(&self, id: &str) -> bool {
        self.author_id.as_deref() == Some(id)
    }

    /// The digest key the email is held under: one digest per thread.
    fn digest_key(&self) -> String {
        format!("thread:{}", self.thread_id)
    }
}

impl Follower {
    fn parse(value: &Value, path: String) -> Result<Self, PayloadError> {
        let object = as_object(value, &path)?;
        let id = required_string(object, "id", &format!("{path}.id"))?;
        let email = optional_non_empty_string(object, "email", &format!("{path}.email"))?;
        let name = optional_non_empty_string(object, "name", &format!("{path}.name"))?;
        Ok(Follower {
            path,
            id,
            email,
            name,
        })
    }

    fn recipient(&self) -> Recipient {
        let data = self.name.as_ref().map(|name| {
            let mut data = Map::new();
            data.insert("name".to_string(), Value::String(name.clone()));
            Value::Object(data).to_string()
        });
        Recipient {
            id: self.id.clone(),
            email: self.email.clone(),
            phone: None,
            data,
        }
    }
}

belfry_plugin_sdk::export_notifier!(CommentNotifier);
