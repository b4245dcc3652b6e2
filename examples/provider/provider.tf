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
}
