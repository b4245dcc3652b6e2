# A stateful service: busybox httpd serving from a named volume, on the
# bridge network with a port published on 127.0.0.1, a memory limit and a
# restart policy, and what a real service asks of its container: its own
# file-descriptor limit, listen backlog, /dev/shm and configuration file,
# an init that reaps its zombies, and a name for its database. The volume's
# data, the IP and the MAC address stay the same when the image is upgraded
# (-var image=docker.io/pouch/demo:v2), and so do all these settings.
#
# The images are those `make demo` builds (tools/demo.sh). Run with the
# provider built by `make demo`, as root:
#
#   TF_CLI_CONFIG_FILE=bin/demo.tfrc terraform -chdir=examples/stateful apply
#   curl http://127.0.0.1:8090/
terraform {
  required_providers {
    pouch = {
      source = "pouch/pouch"
    }
  }
}

provider "pouch" {}

variable "image" {
  type    = string
  default = "docker.io/pouch/demo:v1"
}

resource "pouch_volume" "site" {
  name   = "pouch-stateful-site"
  labels = { app = "web" }
}

resource "pouch_container" "web" {
  name  = "pouch-stateful-web"
  image = var.image
  # Seed the volume on first start, then serve it on port 80 of the
  # container's own address.
  command = ["sh", "-c", "test -e /site/index.html || echo \"hello from $(hostname)\" > /site/index.html; exec httpd -f -p 80 -h /site -c /etc/httpd.conf"]

  network_mode = "bridge"
  ports = [
    { internal = 80, external = 8090, ip = "127.0.0.1" },
  ]
  mounts = [
    { type = "volume", source = pouch_volume.site.name, target = "/site" },
    { type = "tmpfs", target = "/tmp", tmpfs_size = 16 },
  ]

  memory     = 64
  cpus       = 0.5
  pids_limit = 64
  restart    = "unless-stopped"

  # A hard limit above containerd's own needs CAP_SYS_RESOURCE; 16384 fits
  # the test machines, 65536 a usual host.
  ulimits  = [{ name = "nofile", soft = 16384, hard = 16384 }]
  shm_size = 128
  sysctls  = { "net.core.somaxconn" = "1024" }
  init     = true
  uploads = [
    # busybox httpd's configuration: every client may read the site.
    { file = "/etc/httpd.conf", content = "A:*\n", mode = "0644" },
  ]
  extra_hosts = { "db.internal" = "10.88.0.10" }
}

output "ip_address" {
  value = pouch_container.web.ip_address
}

output "mac_address" {
  value = pouch_container.web.mac_address
}

output "url" {
  value = "http://127.0.0.1:8090/"
}

output "volume_mountpoint" {
  value = pouch_volume.site.mountpoint
}
