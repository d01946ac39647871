"""One small pipeline per engine feature in `pipelines.engines.FEATURES` (doctor's table), and
one that needs none of them: compiled by the tests to check that each is found in its IR and
refused by an engine too old for it."""

from kfp import dsl


@dsl.component(base_image="python:3.11-slim")
def number(value: int) -> int:
    return value


@dsl.component(base_image="python:3.11-slim")
def total(values: list) -> int:  # type: ignore[type-arg]
    return sum(values)


@dsl.pipeline(name="plain")
def plain(value: int = 1) -> None:
    number(value=value)


@dsl.pipeline(name="branches")
def branches(value: int = 1) -> None:
    with dsl.If(value == 1):
        number(value=1)
    with dsl.Elif(value == 2):
        number(value=2)
    with dsl.Else():
        number(value=3)


@dsl.pipeline(name="one-of")
def one_of(value: int = 1) -> int:
    with dsl.If(value == 1):
        first = number(value=1)
    with dsl.Else():
        second = number(value=2)
    return dsl.OneOf(first.output, second.output)


@dsl.pipeline(name="parallelism")
def parallelism() -> None:
    with dsl.ParallelFor([1, 2, 3], parallelism=2) as item:
        number(value=item)


@dsl.pipeline(name="collected")
def collected() -> None:
    with dsl.ParallelFor([1, 2, 3]) as item:
        each = number(value=item)
    total(values=dsl.Collected(each.output))


@dsl.pipeline(name="retried")
def retried() -> None:
    number(value=1).set_retry(num_retries=2)


@dsl.pipeline(name="inner")
def inner() -> None:
    number(value=1)


@dsl.pipeline(name="retried-sub-pipeline")
def retried_sub_pipeline() -> None:
    inner().set_retry(num_retries=2)


@dsl.pipeline(name="imported")
def imported() -> None:
    dsl.importer(artifact_uri="gs://bucket/model", artifact_class=dsl.Model, reimport=False)


@dsl.pipeline(
    name="imported-to-workspace",
    pipeline_config=dsl.PipelineConfig(workspace=dsl.WorkspaceConfig(size="1Gi")),
)
def imported_to_workspace() -> None:
    dsl.importer(
        artifact_uri="gs://bucket/model", artifact_class=dsl.Model, reimport=False, download_to_workspace=True
    )


@dsl.pipeline(name="uncached")
def uncached() -> None:
    number(value=1).set_caching_options(enable_caching=False)
