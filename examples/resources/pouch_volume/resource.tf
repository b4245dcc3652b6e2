resource "pouch_volume" "data" {
  name   = "db-data"
  labels = { app = "db" }
}

resource "pouch_container" "db" {
  name  = "db"
  image = "docker.io/library/busybox:1.36"

  command = ["sh", "-c", "while true; do date >> /data/log; sleep 60; done"]
  mounts = [
    { type = "volume", source = pouch_volume.data.name, target = "/data" },
  ]
}
