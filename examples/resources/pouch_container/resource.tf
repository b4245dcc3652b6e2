resource "pouch_container" "example" {
  name  = "my-container"
  image = "docker.io/library/busybox:1.36"

  command = ["sh", "-c", "while true; do date; sleep 60; done"]

  env = {
    GREETING = "hello"
  }

  network_mode = "host"
  stop_timeout = 10
}
