# Images from private registries: a password from a sensitive variable, a
# Docker config.json with a credential helper, a registry's own CA, and a
# registry served over plain HTTP on the LAN.
variable "registry_password" {
  description = "Password (or token) of the ci user of registry.example.internal."
  type        = string
  sensitive   = true
}

provider "pouch" {
  alias = "private"

  registry_auth = [
    {
      address  = "registry.example.internal:5000"
      username = "ci"
      password = var.registry_password
      ca_file  = "/etc/pouch/registry-ca.pem"
    },
    {
      # Its credHelpers name docker-credential-ecr-login, run from PATH.
      address     = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
      config_file = "/root/.docker/config.json"
    },
  ]
  insecure_registries = ["10.20.0.5:5000"]
}

resource "pouch_container" "app" {
  provider = pouch.private
  name     = "app"
  image    = "registry.example.internal:5000/team/app:1.4.2"
}
