//! Outbound lifecycle webhooks: a tenant's endpoints and the messages sent to them.

use super::Engine;
use crate::endpoints;

impl Engine {
    /// Registers an outbound webhook endpoint for `tenant`; the answer holds its secret.
    pub async fn add_endpoint(
        &self,
        tenant: &str,
        url: &str,
        events: &[String],
        description: Option<&str>,
    ) -> Result<endpoints::CreatedEndpoint, endpoints::EndpointError> {
        endpoints::create(
            &self.db,
            self.endpoint_sender.policy(),
            tenant,
            url,
            events,
            description,
        )
        .await
    }

    /// A tenant's endpoints (`None`: every tenant's).
    pub async fn endpoints(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<endpoints::Endpoint>, endpoints::EndpointError> {
        endpoints::list(&self.db, tenant).await
    }

    /// One endpoint, if it is `tenant`'s (`None`: any tenant's).
    pub async fn endpoint(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<endpoints::Endpoint, endpoints::EndpointError> {
        endpoints::get(&self.db, tenant, id).await
    }

    pub async fn endpoint_secret(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<String, endpoints::EndpointError> {
        endpoints::secret(&self.db, tenant, id).await
    }

    /// Enables an endpoint again (clearing its run of failures), or disables it.
    pub async fn set_endpoint_enabled(
        &self,
        tenant: Option<&str>,
        id: &str,
        enabled: bool,
    ) -> Result<endpoints::Endpoint, endpoints::EndpointError> {
        endpoints::set_enabled(&self.db, tenant, id, enabled).await
    }

    /// Sends again the messages an endpoint missed while it was disabled.
    pub async fn recover_endpoint(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<u64, endpoints::EndpointError> {
        let n = endpoints::recover(&self.db, tenant, id).await?;
        if n > 0 {
            self.wake.wake();
        }
        Ok(n)
    }

    pub async fn remove_endpoint(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<(), endpoints::EndpointError> {
        endpoints::remove(&self.db, tenant, id).await
    }

    /// An endpoint's messages, newest first, with their tries.
    pub async fn endpoint_messages(
        &self,
        tenant: Option<&str>,
        id: &str,
        limit: u32,
    ) -> Result<Vec<endpoints::Message>, endpoints::EndpointError> {
        endpoints::messages(&self.db, tenant, id, limit).await
    }
}
