terraform {
  required_providers {
    pouch = {
      source = "pouch/pouch"
    }
  }
}

# All arguments are optional; these are the defaults.
provider "pouch" {
  address   = "/run/containerd/containerd.sock"
  namespace = "pouch"

  # The bridge network of containers with network_mode = "bridge".
  bridge_name   = "pouch0"
  bridge_subnet = "10.88.0.0/16"
}
