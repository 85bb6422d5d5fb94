from agentflow_core.cli import main

main()
