resource "pouch_volume" "data" {
  name = "my-data"
}

resource "pouch_container" "example" {
  name  = "my-container"
  image = "docker.io/library/busybox:1.36"

  command = ["sh", "-c", "while true; do date >> /data/dates; sleep 60; done"]

  env = {
    GREETING = "hello"
  }

  # The default network: an address of its own, kept across upgrades.
  network_mode = "bridge"
  ports = [
    { internal = 80, external = 8080, ip = "127.0.0.1" },
  ]

  # Data that survives restarts and image upgrades.
  mounts = [
    { type = "volume", source = pouch_volume.data.name, target = "/data" },
  ]

  memory       = 128
  restart      = "unless-stopped"
  stop_timeout = 10

  # An image upgrade must pass this check, or it is rolled back.
  healthcheck = {
    command  = ["sh", "-c", "test -s /data/dates"]
    interval = "2s"
    retries  = 5
  }
  upgrade = {
    verify_seconds = 5 # the new task must still run 5 s after it started
    keep_revisions = 1 # going back to the previous image finds its files again
  }
}
