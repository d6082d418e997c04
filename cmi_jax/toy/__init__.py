"""The paper's theory toys: closed-form regression, learned classification."""
