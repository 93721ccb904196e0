from django.apps import AppConfig


class ChannelsRelayConfig(AppConfig):
    name = "bench.channels_relay"
    label = "channels_relay"
    default_auto_field = "django.db.models.BigAutoField"
