# A container made elsewhere (another module, another workspace on the same
# host), read by name: here, its address is given to a client.
data "pouch_container" "db" {
  name = "db"
}

resource "pouch_container" "app" {
  name  = "app"
  image = "registry.example.internal:5000/team/app:1.4"
  env = {
    DB_HOST = data.pouch_container.db.ip_address
  }
}
