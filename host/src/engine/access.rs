//! Who may call `belfry serve`: tenants and their API keys.

use super::Engine;
use crate::keys::{self, ApiKey, KeyError};
use crate::store::StoreError;
use crate::tenants::{self, Tenant, TenantError};

impl Engine {
    /// Creates a tenant's API key (the tenant too, if new), or an admin key for `None`; the
    /// secret is returned once.
    pub async fn create_key(
        &self,
        tenant: Option<&str>,
        name: &str,
    ) -> Result<(ApiKey, String), KeyError> {
        keys::create(&self.db, tenant, name).await
    }

    pub async fn keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        keys::list(&self.db, tenant).await
    }

    pub async fn revoke_key(&self, id: &str) -> Result<ApiKey, KeyError> {
        keys::revoke(&self.db, id).await
    }

    /// The live key with this secret, if any.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>, StoreError> {
        keys::authenticate(&self.db, secret).await
    }

    pub async fn ensure_tenant(&self, id: &str) -> Result<(Tenant, bool), TenantError> {
        tenants::ensure(&self.db, id).await
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        tenants::list(&self.db).await
    }
}
