# The `make demo` configuration: one container running busybox httpd on the
# host network (127.0.0.1:8089). tools/demo.sh applies it with image v1, then
# with image v2: the second apply upgrades the container in place.
terraform {
  required_providers {
    pouch = {
      source = "pouch/pouch"
    }
  }
}

# Defaults: address /run/containerd/containerd.sock, namespace "pouch".
provider "pouch" {}

variable "image" {
  description = "Image the demo container runs, e.g. docker.io/pouch/demo:v1."
  type        = string
}

resource "pouch_container" "web" {
  name         = "pouch-demo-web"
  image        = var.image
  network_mode = "host"
  command      = ["httpd", "-f", "-p", "127.0.0.1:8089", "-h", "/var/www"]
}

output "id" {
  value = pouch_container.web.id
}

output "image" {
  value = pouch_container.web.image
}

output "image_id" {
  value = pouch_container.web.image_id
}

output "status" {
  value = pouch_container.web.status
}
