// Herald on Azure: a scaled-out deployment (several instances sharing one store and one queue).
//
//   App Service plan (Linux) + Web App (Python 3.11, `python app.py`, system-assigned identity)
//   Azure Bot (kind azurebot) with the Microsoft Teams channel, messaging endpoint on the Web App
//   Cosmos DB (serverless, SQL API): database `herald` and the containers storage/cosmos.py uses
//   Storage account: the delivery queue and its poison queue (delivery/queue_azure.py)
//   Key Vault (RBAC): every secret Herald reads; app settings are Key Vault references
//
// No secret has a value in this file: secrets arrive as @secure() parameters or are read from
// the resources (listKeys) and go straight into Key Vault. Cosmos DB is reached with the Web
// App's managed identity (no key at all). tests/unit/test_deployment.py checks this template
// against config.py, storage/cosmos.py and delivery/queue_azure.py.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

@description('Azure region for everything but the bot (the Azure Bot resource is global).')
param location string = resourceGroup().location

@description('Prefix of every resource name (lowercase letters, digits, hyphens); a hash of the resource group keeps names unique.')
@minLength(3)
@maxLength(11)
param namePrefix string = 'herald'

@description('App Service plan SKU: Basic (B1) or higher, since Always On is not available on Free/Shared. Autoscale needs Standard (S1) or Premium (P0v3...).')
param appServicePlanSku string = 'B1'

@description('Number of Herald instances (App Service plan workers). Every instance sends deliveries; they share Cosmos DB, the queue, the secrets below and each Teams tenant\'s send budget (50 messages/s per app per tenant, kept in Cosmos DB), so any number of instances, autoscale included, stays within Teams\' limit.')
@minValue(1)
@maxValue(30)
param instanceCount int = 2

@description('Where people and services reach Herald (links the bot sends, the push consent page, Microsoft Graph notifications), e.g. https://herald.contoso.com. Empty = the Web App\'s own https://<name>.azurewebsites.net address.')
param publicUrl string = ''

@description('Application (client) id of the bot\'s Entra ID app registration (MicrosoftAppId).')
@minLength(36)
@maxLength(36)
param microsoftAppId string

@description('Client secret of the bot\'s app registration (MicrosoftAppPassword). Stored in Key Vault.')
@secure()
@minLength(1)
param microsoftAppPassword string

@description('Kind of the bot\'s app registration (MicrosoftAppType, the Azure Bot\'s msaAppType). Azure no longer creates new multi-tenant bots: use SingleTenant unless the bot already exists as MultiTenant.')
@allowed([
  'SingleTenant'
  'MultiTenant'
])
param microsoftAppType string = 'SingleTenant'

@description('Entra ID tenant of the bot\'s app registration (MicrosoftAppTenantId; used with SingleTenant).')
param microsoftAppTenantId string = subscription().tenantId

@description('Name of the Azure Bot resource (globally unique).')
param botName string = '${namePrefix}-bot-${uniqueString(resourceGroup().id)}'

@description('Name people see for the bot.')
param botDisplayName string = 'Herald'

@description('Azure Bot pricing tier: F0 (free, standard channels such as Teams are unlimited) or S1.')
@allowed([
  'F0'
  'S1'
])
param botSku string = 'F0'

@description('API keys backends send as `Authorization: Bearer <key>`, comma-separated (HERALD_API_KEYS). Every instance must accept the same keys, so they are configured here, never generated per instance. Stored in Key Vault.')
@secure()
@minLength(16)
param heraldApiKeys string

@description('HMAC key (at least 32 characters) for the short-lived links the bot sends (HERALD_LINK_SECRET). Shared by every instance: a link made by one is checked by another. Stored in Key Vault.')
@secure()
@minLength(32)
param linkSecret string

@description('VAPID private key for Web Push (WEBPUSH_VAPID_PRIVATE_KEY): base64url of the raw P-256 scalar, or of its DER. Shared by every instance; browsers subscribe with its public key, so keep it. Stored in Key Vault.')
@secure()
@minLength(43)
param vapidPrivateKey string

@description('VAPID subject (WEBPUSH_VAPID_SUBJECT): a mailto: or https: contact push services can reach, e.g. mailto:notifications@contoso.com.')
param vapidSubject string

@description('Optional: Entra ID tenant whose calendars Herald may watch through Microsoft Graph (GRAPH_TENANT_ID). Leave the three Graph parameters empty to keep calendar notifications off.')
param graphTenantId string = ''

@description('Optional: application (client) id Herald calls Microsoft Graph with (GRAPH_CLIENT_ID; application permission Calendars.Read, admin consent).')
param graphClientId string = ''

@description('Optional: client secret of that Graph app registration (GRAPH_CLIENT_SECRET). Stored in Key Vault. Empty = calendar notifications off.')
@secure()
param graphClientSecret string = ''

@description('Further Herald settings as name/value pairs, e.g. {"HERALD_OPT_IN_REQUIRED": "true", "HERALD_CRITICAL_TYPES": "security.alert"}. No secrets here (they would not go through Key Vault). The settings this template manages win over these.')
param extraAppSettings object = {}

// ---------------------------------------------------------------------------------------------
// Names and constants
// ---------------------------------------------------------------------------------------------

var suffix = uniqueString(resourceGroup().id)
var compactPrefix = take(toLower(replace(namePrefix, '-', '')), 9)
var planName = '${namePrefix}-plan-${suffix}'
var webAppName = '${namePrefix}-${suffix}'
var cosmosAccountName = '${toLower(namePrefix)}-cosmos-${suffix}'
var storageAccountName = '${compactPrefix}st${suffix}'
var vaultName = '${take(compactPrefix, 8)}kv${suffix}'

// Python's port on App Service's built-in Linux images; the front end forwards https to it.
var appPort = 8000

// COSMOS_DATABASE's default in config.py.
var cosmosDatabaseName = 'herald'

// storage/cosmos.py's CONTAINERS: name, partition key path, and ttl (true = the container's
// defaultTtl is -1: expiry on, but only documents carrying their own `ttl` expire).
var cosmosContainers = [
  { name: 'users', partitionKey: '/userId', ttl: false }
  { name: 'aliases', partitionKey: '/id', ttl: false }
  { name: 'conversations', partitionKey: '/userId', ttl: false }
  { name: 'notifications', partitionKey: '/id', ttl: false }
  { name: 'inbox', partitionKey: '/userId', ttl: true }
  { name: 'deliveries', partitionKey: '/id', ttl: true }
  { name: 'botState', partitionKey: '/id', ttl: false }
  { name: 'promptAnswers', partitionKey: '/notificationId', ttl: false }
  { name: 'pendingPrompts', partitionKey: '/conversationKey', ttl: false }
  { name: 'pushSubscriptions', partitionKey: '/userId', ttl: false }
  { name: 'devices', partitionKey: '/userId', ttl: false }
  { name: 'deviceTokens', partitionKey: '/id', ttl: false }
  { name: 'owners', partitionKey: '/id', ttl: false }
  { name: 'graphSubscriptions', partitionKey: '/userId', ttl: false }
  { name: 'graphChanges', partitionKey: '/id', ttl: true }
  { name: 'graphResources', partitionKey: '/userId', ttl: false }
  { name: 'rateBudgets', partitionKey: '/id', ttl: false }
  { name: 'audienceMarks', partitionKey: '/notificationId', ttl: true }
]

// AZURE_STORAGE_QUEUE's default in config.py; failing messages go to `<name>-poison`.
var deliveryQueueName = 'herald-deliveries'

// Built-in roles: Key Vault Secrets User, and Cosmos DB Built-in Data Contributor (data plane).
var keyVaultSecretsUserRole = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4633458b-17de-408a-b874-0445c86b69e6')
var cosmosDataContributorRole = '00000000-0000-0000-0000-000000000002'

// The tenant Herald and the Azure Bot get tokens for: a MultiTenant bot's come from
// botframework.com, so it has none.
var botTenantId = microsoftAppType == 'SingleTenant' ? microsoftAppTenantId : ''

var graphConfigured = !empty(graphTenantId) && !empty(graphClientId) && !empty(graphClientSecret)

// ---------------------------------------------------------------------------------------------
// Web App
// ---------------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: planName
  location: location
  kind: 'linux'
  sku: {
    name: appServicePlanSku
    capacity: instanceCount
  }
  properties: {
    reserved: true // Linux
  }
}

resource webApp 'Microsoft.Web/sites@2023-12-01' = {
  name: webAppName
  location: location
  kind: 'app,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Any instance can serve any request: state lives in Cosmos DB and the queue.
    clientAffinityEnabled: false
    siteConfig: {
      linuxFxVersion: 'PYTHON|3.11'
      appCommandLine: 'python app.py'
      alwaysOn: true
      healthCheckPath: '/healthz'
      http20Enabled: true
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
  }
}

// Herald's settings (config.py's aliases). Secrets are Key Vault references, resolved by App
// Service with the Web App's identity. COSMOS_KEY is deliberately absent: Herald then signs in to
// Cosmos DB with the managed identity (the database and containers are created below).
var appSettings = {
  MicrosoftAppId: microsoftAppId
  MicrosoftAppPassword: '@Microsoft.KeyVault(SecretUri=${appPasswordSecret.properties.secretUri})'
  MicrosoftAppType: microsoftAppType
  MicrosoftAppTenantId: botTenantId
  HOST: '0.0.0.0'
  PORT: string(appPort)
  HERALD_PUBLIC_URL: empty(publicUrl) ? 'https://${webApp.properties.defaultHostName}' : publicUrl
  HERALD_API_KEYS: '@Microsoft.KeyVault(SecretUri=${apiKeysSecret.properties.secretUri})'
  HERALD_LINK_SECRET: '@Microsoft.KeyVault(SecretUri=${linkSecretSecret.properties.secretUri})'
  WEBPUSH_VAPID_PRIVATE_KEY: '@Microsoft.KeyVault(SecretUri=${vapidSecret.properties.secretUri})'
  WEBPUSH_VAPID_SUBJECT: vapidSubject
  HERALD_STORE: 'cosmos'
  HERALD_QUEUE: 'azure'
  COSMOS_ENDPOINT: cosmos.properties.documentEndpoint
  COSMOS_DATABASE: cosmosDatabaseName
  AZURE_STORAGE_CONNECTION_STRING: '@Microsoft.KeyVault(SecretUri=${storageConnectionSecret.properties.secretUri})'
  AZURE_STORAGE_QUEUE: deliveryQueueName
  HERALD_LOG_FORMAT: 'json'
  // App Service platform settings, not Herald's: build on deployment (Oryx installs
  // requirements.txt), and the port the front end forwards to.
  SCM_DO_BUILD_DURING_DEPLOYMENT: 'true'
  WEBSITES_PORT: string(appPort)
}

// Microsoft Graph calendar notifications, only when all three Graph parameters are given.
var graphAppSettings = {
  GRAPH_TENANT_ID: graphTenantId
  GRAPH_CLIENT_ID: graphClientId
  GRAPH_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/${graphSecretName})'
}

resource webAppSettings 'Microsoft.Web/sites/config@2023-12-01' = {
  parent: webApp
  name: 'appsettings'
  // extraAppSettings first: the settings above win over a clash.
  properties: union(extraAppSettings, appSettings, graphConfigured ? graphAppSettings : {})
  // The references resolve only once the identity may read secrets and the data exists.
  dependsOn: [
    webAppReadsSecrets
    webAppUsesCosmos
    graphSecret
    cosmosContainer
    deliveryQueues
  ]
}

// ---------------------------------------------------------------------------------------------
// Azure Bot and its Teams channel
// ---------------------------------------------------------------------------------------------

resource bot 'Microsoft.BotService/botServices@2022-09-15' = {
  name: botName
  location: 'global'
  kind: 'azurebot'
  sku: {
    name: botSku
  }
  properties: {
    displayName: botDisplayName
    endpoint: 'https://${webApp.properties.defaultHostName}/api/messages'
    msaAppId: microsoftAppId
    msaAppType: microsoftAppType
    msaAppTenantId: botTenantId
  }
}

resource teamsChannel 'Microsoft.BotService/botServices/channels@2022-09-15' = {
  parent: bot
  name: 'MsTeamsChannel'
  location: 'global'
  properties: {
    channelName: 'MsTeamsChannel'
    properties: {
      isEnabled: true
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Cosmos DB (serverless, SQL API), reached with the Web App's managed identity
// ---------------------------------------------------------------------------------------------

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: cosmosAccountName
  location: location
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    capabilities: [
      {
        name: 'EnableServerless'
      }
    ]
    // Entra ID only: no account keys to leak or rotate.
    disableLocalAuth: true
    minimalTlsVersion: 'Tls12'
  }
}

resource cosmosDatabase 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: cosmos
  name: cosmosDatabaseName
  properties: {
    resource: {
      id: cosmosDatabaseName
    }
  }
}

resource cosmosContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = [
  for container in cosmosContainers: {
    parent: cosmosDatabase
    name: container.name
    properties: {
      resource: union({
        id: container.name
        partitionKey: {
          paths: [
            container.partitionKey
          ]
          kind: 'Hash'
        }
      }, container.ttl ? { defaultTtl: -1 } : {})
    }
  }
]

// Data-plane access for the Web App (Herald cannot create databases or containers this way,
// which is why they are created above).
resource webAppUsesCosmos 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: cosmos
  name: guid(cosmos.id, webApp.id, cosmosDataContributorRole)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributorRole}'
    principalId: webApp.identity.principalId
    scope: cosmos.id
  }
}

// ---------------------------------------------------------------------------------------------
// Storage account: the delivery queue and its poison queue
// ---------------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    // Herald's queue client signs in with a connection string (account key).
    allowSharedKeyAccess: true
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deliveryQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queueName in [deliveryQueueName, '${deliveryQueueName}-poison']: {
    parent: queueService
    name: queueName
  }
]

// ---------------------------------------------------------------------------------------------
// Key Vault (RBAC) and the secrets Herald reads
// ---------------------------------------------------------------------------------------------

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: vaultName
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
  }
}

resource appPasswordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'MicrosoftAppPassword'
  properties: {
    value: microsoftAppPassword
  }
}

resource apiKeysSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'HeraldApiKeys'
  properties: {
    value: heraldApiKeys
  }
}

resource linkSecretSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'HeraldLinkSecret'
  properties: {
    value: linkSecret
  }
}

resource vapidSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'WebPushVapidPrivateKey'
  properties: {
    value: vapidPrivateKey
  }
}

resource storageConnectionSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'AzureStorageConnectionString'
  properties: {
    value: 'DefaultEndpointsProtocol=https;AccountName=${storage.name};AccountKey=${storage.listKeys().keys[0].value};EndpointSuffix=${environment().suffixes.storage}'
  }
}

var graphSecretName = 'GraphClientSecret'

resource graphSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (graphConfigured) {
  parent: vault
  name: graphSecretName
  properties: {
    value: graphClientSecret
  }
}

resource webAppReadsSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, webApp.id, keyVaultSecretsUserRole)
  scope: vault
  properties: {
    roleDefinitionId: keyVaultSecretsUserRole
    principalId: webApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

@description('Name of the Web App (for `az webapp deploy`).')
output webAppName string = webApp.name

@description('Herald\'s address.')
output webAppUrl string = 'https://${webApp.properties.defaultHostName}'

@description('The Azure Bot\'s messaging endpoint.')
output botMessagingEndpoint string = bot.properties.endpoint

@description('Name of the Azure Bot resource.')
output botName string = bot.name

@description('Name of the Key Vault holding Herald\'s secrets.')
output keyVaultName string = vault.name

@description('Cosmos DB account endpoint (COSMOS_ENDPOINT).')
output cosmosEndpoint string = cosmos.properties.documentEndpoint

@description('Storage account whose queues carry deliveries.')
output storageAccountName string = storage.name
