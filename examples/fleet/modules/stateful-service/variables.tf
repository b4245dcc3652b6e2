variable "name" {
  description = "Name of the service: the container's, and its volume's prefix."
  type        = string
}

variable "image" {
  description = "Image of the service, e.g. registry.example/app:v2."
  type        = string
}

variable "port" {
  description = "Port the service serves on, in its container."
  type        = number
  default     = 8080
}
