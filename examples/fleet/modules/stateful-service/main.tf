# A stateful service on one host: a named volume for its data and a
# container that serves from it, with a health check that gates every
# upgrade. Instantiate it once per host, each with the provider of that
# host (see ../../main.tf).
terraform {
  required_providers {
    pouch = {
      source = "pouch/pouch"
    }
  }
}

resource "pouch_volume" "data" {
  name   = "${var.name}-data"
  labels = { service = var.name }
}

resource "pouch_container" "service" {
  name  = var.name
  image = var.image

  # Seed the volume on the first start, then serve it: its data survives
  # every upgrade.
  command = ["sh", "-c", "test -e /data/index.html || echo \"${var.name} on $(hostname)\" > /data/index.html; exec httpd -f -p ${var.port} -h /data"]
  mounts = [
    { type = "volume", source = pouch_volume.data.name, target = "/data" },
  ]
  network_mode = "bridge"

  # The new image must answer on its port before the upgrade commits;
  # otherwise the host rolls back to the old image, and the apply stops.
  healthcheck = {
    command      = ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:${var.port}/"]
    interval     = "500ms"
    timeout      = "2s"
    start_period = "200ms"
    retries      = 5
  }
  upgrade = {
    verify_seconds = 1
    rollback       = true
  }
  restart = "unless-stopped"
}
