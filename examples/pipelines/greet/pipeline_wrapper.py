"""The smallest useful pipeline: a PromptBuilder that greets someone."""

from haystack import Pipeline
from haystack.components.builders import PromptBuilder

from hayhooks import BasePipelineWrapper


class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        self.pipeline = Pipeline()
        self.pipeline.add_component(
            "greeter", PromptBuilder(template="Hello {{ name }}, welcome to Hayhooks!", required_variables=["name"])
        )

    def run_api(self, name: str) -> str:
        """Greet someone by name.

        Args:
            name: The name of the person to greet.

        Returns:
            The greeting.
        """
        return self.pipeline.run({"greeter": {"name": name}})["greeter"]["prompt"]
