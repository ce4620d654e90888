import sqlalchemy as sa, mlops_jupyter as mlops
from mlops_jupyter.registry.schema import runs
def test_x(registry, registry_url):
    run = mlops.start_run()
    print(mlops.get_run(run.id)["owner_started"])
    engine = sa.create_engine(registry_url)
    with engine.begin() as c:
        n = c.execute(sa.update(runs).where(runs.c.id == run.id).values(owner_started=runs.c.owner_started - 100)).rowcount
        print("rows", n)
    print(mlops.get_run(run.id)["owner_started"], mlops.get_run(run.id)["status"])
    print(mlops.current_registry().store.running_runs_on(__import__("socket").gethostname()))
