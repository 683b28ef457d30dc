"""Device profiles: the schema operators write (strict), the loader and the topic matcher."""

from ingest.profiles.loader import ProfileError, load_profiles
from ingest.profiles.schema import Profile
from ingest.profiles.topics import TopicTemplate

__all__ = ["Profile", "ProfileError", "TopicTemplate", "load_profiles"]
