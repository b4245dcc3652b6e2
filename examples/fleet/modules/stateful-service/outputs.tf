output "ip_address" {
  description = "The container's address on its host's bridge network."
  value       = pouch_container.service.ip_address
}

output "image_id" {
  description = "Digest of the image the service runs."
  value       = pouch_container.service.image_id
}
