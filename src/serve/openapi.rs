//! The API's contract: the OpenAPI document served at `/openapi.json`, derived from the
//! handlers' `#[utoipa::path]` attributes and the types they take and answer with (the answer
//! shapes are in [`super::schemas`]). Nothing imports this module but the router.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "belfry",
        description = "A durable, explainable notification engine. API keys act in one tenant \
                       (an admin key names it with `Belfry-Tenant`); the inbox routes take an \
                       end user's inbox token instead. See docs/operating.md."
    ),
    paths(
        super::events::trigger,
        super::events::preview,
        super::events::events,
        super::events::event,
        super::events::notification,
        super::deliveries::deliveries,
        super::deliveries::delivery,
        super::deliveries::explain,
        super::deliveries::cancel,
        super::recipients::preferences,
        super::recipients::set_preference,
        super::recipients::settings,
        super::recipients::set_settings,
        super::suppressions::suppressions,
        super::suppressions::add_suppression,
        super::suppressions::remove_suppression,
        super::signals::signal,
        super::plugins::plugins,
        super::plugins::load_plugin,
        super::plugins::replay,
        super::inbox_tokens::inbox_token,
        super::tenants::create_tenant,
        super::tenants::tenants,
        super::keys::create_key,
        super::keys::keys,
        super::keys::revoke_key,
        super::inbox::list,
        super::inbox::counts,
        super::inbox::mark,
        super::inbox::read_all,
        super::inbox::stream,
        super::webhooks::receive,
        super::endpoints::create,
        super::endpoints::list,
        super::endpoints::get,
        super::endpoints::secret,
        super::endpoints::enable,
        super::endpoints::disable,
        super::endpoints::recover,
        super::endpoints::remove,
        super::endpoints::messages,
        super::webhooks::delivery_feedback,
        super::unsubscribe::one_click,
        super::unsubscribe::page,
    ),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what.to_string()))
                    .build(),
            )
        };
        components.add_security_scheme(
            "api_key",
            bearer("An API key, bfy_…, from `belfry keys create`"),
        );
        components.add_security_scheme(
            "inbox_token",
            bearer("An end user's inbox token from POST /v1/inbox/tokens (also ?token=)"),
        );
    }
}

/// The document, built once.
pub fn document() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document serialises")
    })
}
