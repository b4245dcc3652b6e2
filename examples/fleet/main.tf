# A fleet: the same stateful service on three hosts, reached over SSH, and
# upgraded one host after another. Each host has a provider configuration
# of its own (an alias); each module instance waits for the one before it
# (depends_on), so that host b's upgrade starts only once host a's has
# passed its health check, and a new image that fails it on host a is
# rolled back there and the apply stops before any other host is touched.
#
#   terraform apply -var-file=fleet.tfvars -var image=registry.example/app:v2
#
# See docs/guides/fleets.md.
terraform {
  required_providers {
    pouch = {
      source = "pouch/pouch"
    }
  }
}

variable "hosts" {
  description = "The hosts, by name: the SSH URL and host key, and what differs from the provider's defaults."
  type = map(object({
    url            = string
    host_key       = string
    remote_address = optional(string)
    namespace      = optional(string)
    data_root      = optional(string)
    bridge_name    = optional(string)
    bridge_subnet  = optional(string)
  }))
}

variable "ssh_private_key" {
  description = "The private key of the SSH user (root) on every host."
  type        = string
  sensitive   = true
}

variable "image" {
  description = "Image of the service on every host."
  type        = string
}

provider "pouch" {
  alias          = "a"
  host           = var.hosts["a"].url
  remote_address = var.hosts["a"].remote_address
  namespace      = var.hosts["a"].namespace
  data_root      = var.hosts["a"].data_root
  bridge_name    = var.hosts["a"].bridge_name
  bridge_subnet  = var.hosts["a"].bridge_subnet
  ssh = {
    private_key = var.ssh_private_key
    host_key    = var.hosts["a"].host_key
  }
}

provider "pouch" {
  alias          = "b"
  host           = var.hosts["b"].url
  remote_address = var.hosts["b"].remote_address
  namespace      = var.hosts["b"].namespace
  data_root      = var.hosts["b"].data_root
  bridge_name    = var.hosts["b"].bridge_name
  bridge_subnet  = var.hosts["b"].bridge_subnet
  ssh = {
    private_key = var.ssh_private_key
    host_key    = var.hosts["b"].host_key
  }
}

provider "pouch" {
  alias          = "c"
  host           = var.hosts["c"].url
  remote_address = var.hosts["c"].remote_address
  namespace      = var.hosts["c"].namespace
  data_root      = var.hosts["c"].data_root
  bridge_name    = var.hosts["c"].bridge_name
  bridge_subnet  = var.hosts["c"].bridge_subnet
  ssh = {
    private_key = var.ssh_private_key
    host_key    = var.hosts["c"].host_key
  }
}

module "host_a" {
  source    = "./modules/stateful-service"
  providers = { pouch = pouch.a }
  name      = "web"
  image     = var.image
}

# Host b's changes wait for host a's: a rolling upgrade.
module "host_b" {
  source     = "./modules/stateful-service"
  providers  = { pouch = pouch.b }
  name       = "web"
  image      = var.image
  depends_on = [module.host_a]
}

module "host_c" {
  source     = "./modules/stateful-service"
  providers  = { pouch = pouch.c }
  name       = "web"
  image      = var.image
  depends_on = [module.host_b]
}

output "addresses" {
  description = "The service's address on each host."
  value = {
    a = module.host_a.ip_address
    b = module.host_b.ip_address
    c = module.host_c.ip_address
  }
}
